import Foundation
@testable import MarketDataTasks
import XCTest

/// The hand-written decimal text of the COPY path matches `Decimal.description` exactly.
final class DecimalTextTests: XCTestCase {
    func testMatchesFoundationDescription() {
        var values: [Decimal] = ["0", "-0", "1", "-1", "10", "1000", "0.5", "-0.05", "12.3400", "0.000001", "123456789.123456789",
                                 "18446744073709551615", "18446744073709551616", "99999999999999999999999.5", "1e10", "-2.5e-7"]
            .map { Decimal(string: $0)! }
        values += [Decimal(1000) / 100, Decimal(12345) / 10_000, Decimal(7) * Decimal(sign: .plus, exponent: 5, significand: 1),
                   Decimal(sign: .minus, exponent: -3, significand: 4200), Decimal(Double(0.1)), Decimal.nan]
        var state: UInt64 = 1
        for _ in 0..<2_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            values.append(Decimal(sign: state & 1 == 0 ? .plus : .minus, exponent: Int(state >> 60) - 8,
                                  significand: Decimal(state >> 20)))
        }
        for value in values {
            XCTAssertEqual(MarketDataWriter.text(value), value.description)
        }
        XCTAssertNotNil(DecimalParts(Decimal(string: "12.5")!), "the storage layout check passed: the fast path is in use")
    }
}
