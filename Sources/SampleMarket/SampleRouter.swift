import Foundation
import Toolkit
import HTTPServer
import Polygon

/// Answers one request of the sample server.
struct SampleRouter: Sendable {
    let data: SampleMarketData
    let options: SampleServerOptions
    let state: SampleState

    func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let receivedAt = ContinuousClock.now
        state.inFlight.withLock { value in
            value.current += 1
            value.max = Swift.max(value.max, value.current)
        }
        defer { state.inFlight.withLock { $0.current -= 1 } }
        let response: HTTPServerResponse
        if options.requestsPerSecondLimit > 0, !state.admit(at: receivedAt, limit: options.requestsPerSecondLimit) {
            response = json(["status": "ERROR", "request_id": state.nextRequestID(),
                             "error": "You've exceeded the maximum requests per second, please wait or upgrade your subscription to continue."],
                            status: 429)
        } else {
            response = answer(request)
        }
        state.records.withLock {
            $0.append(SampleRecordedRequest(method: request.method, path: request.path, rawQuery: request.rawQuery,
                                            target: request.target, hasAuthorization: request.header("authorization") != nil,
                                            status: response.status, receivedAt: receivedAt))
        }
        return response
    }

    private func answer(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if options.latency > 0 { Thread.sleep(forTimeInterval: options.latency) }
        if let key = options.apiKey {
            let bearer = request.header("authorization")
            let authorized = bearer == "Bearer \(key)" || request.query("apiKey") == key
            if !authorized {
                let message = bearer == nil && request.query("apiKey") == nil
                    ? "API Key was not provided" : "Unknown API Key"
                return json(["status": "NOT_AUTHORIZED", "request_id": state.nextRequestID(), "message": message], status: 401)
            }
        }
        let segments = request.path.split(separator: "/").map(String.init)
        let symbol = SampleRouter.symbol(in: segments)
        var fault = state.takeFault(symbol: symbol, path: request.path)
        if case .delay(let seconds) = fault {
            Thread.sleep(forTimeInterval: seconds)
            fault = nil
        }
        if let fault, let response = faultResponse(fault) { return response }
        guard request.method == "GET" || request.method == "HEAD" else {
            return json(["status": "ERROR", "request_id": state.nextRequestID(), "error": "method not allowed"], status: 405)
        }
        var response = route(request, segments: segments)
        if fault == .truncatedJSON {
            response.body = response.body.prefix(response.body.count / 2)
        }
        return response
    }

    /// The symbol a request is about (aggregates and ticker details), if any.
    static func symbol(in segments: [String]) -> String? {
        if segments.count >= 4, segments[0] == "v2", segments[1] == "aggs", segments[2] == "ticker" { return segments[3] }
        if segments.count == 4, segments[0] == "v3", segments[1] == "reference", segments[2] == "tickers" { return segments[3] }
        return nil
    }

    private func faultResponse(_ fault: SampleFault) -> HTTPServerResponse? {
        let id = state.nextRequestID()
        switch fault {
        case .rateLimited(let retryAfter):
            var response = json(["status": "ERROR", "request_id": id,
                                 "error": "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue."],
                                status: 429)
            if let retryAfter { response.headers.append(("Retry-After", String(retryAfter))) }
            return response
        case .serverError(let status):
            return json(["status": "ERROR", "request_id": id, "error": "Internal server error"], status: status)
        case .htmlBody:
            return HTTPServerResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")],
                                      body: Data("<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>We'll be right back</h1></body></html>".utf8))
        case .errorStatus(let message):
            return json(["status": "ERROR", "request_id": id, "error": message], status: 200)
        case .notFound:
            return json(["status": "NOT_FOUND", "request_id": id, "message": "Ticker not found."], status: 404)
        case .notAuthorized:
            return json(["status": "NOT_AUTHORIZED", "request_id": id,
                         "message": "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"],
                        status: 403)
        case .dropConnection:
            return .dropConnection
        case .truncatedJSON, .delay:
            return nil
        }
    }

    // MARK: - Routes

    private func route(_ request: HTTPServerRequest, segments: [String]) -> HTTPServerResponse {
        switch segments.count {
        case 8 where Array(segments[0...6]) == ["v2", "aggs", "grouped", "locale", "us", "market", "stocks"]:
            return groupedDaily(segments[7])
        case 9 where Array(segments[0...2]) == ["v2", "aggs", "ticker"] && segments[4] == "range":
            return aggregates(request, symbol: segments[3], multiplier: segments[5], timespan: segments[6], from: segments[7], to: segments[8])
        case 4 where Array(segments[0...2]) == ["v3", "reference", "tickers"]:
            return tickerDetails(segments[3])
        case 3 where segments == ["v3", "reference", "tickers"]:
            return tickerList(request)
        case 3 where segments == ["v1", "marketstatus", "upcoming"]:
            return encoded(data.upcomingHolidays)
        case 3 where segments == ["benzinga", "v1", "earnings"]:
            return options.earningsEntitled ? earnings(request) : notEntitled()
        case 3 where segments == ["stocks", "vX", "float"]:
            return options.floatEntitled ? freeFloat(request) : notEntitled()
        default:
            return notFound()
        }
    }

    private func groupedDaily(_ dateText: String) -> HTTPServerResponse {
        guard let date = CivilDate(dateText) else { return badRequest("Could not parse the date parameter.") }
        let bars = data.groupedDaily(date: date)
        var page = PolygonAggregatesPage<PolygonGroupedBar>(requestID: state.nextRequestID(), results: bars.isEmpty ? nil : bars)
        page.count = bars.isEmpty ? nil : bars.count
        // As Polygon answers a closed day (weekend, NYSE holiday): resultsCount 0, no results.
        page.queryCount = bars.count
        page.resultsCount = bars.count
        return encoded(page)
    }

    private func aggregates(_ request: HTTPServerRequest, symbol: String, multiplier: String, timespan: String,
                            from: String, to: String) -> HTTPServerResponse {
        guard let size = Int(multiplier), size >= 1 else { return badRequest("Invalid multiplier.") }
        guard let fromDate = SampleRouter.date(from), let toDate = SampleRouter.date(to) else {
            return badRequest("Could not parse the time parameter: 'from' or 'to'.")
        }
        // Parameters come from the cursor on later pages, from the query on the first.
        var params: [String: String] = [:]
        for item in request.queryItems { params[item.name] = item.value ?? "" }
        if let cursor = request.query("cursor") {
            guard let decoded = SampleRouter.decodeCursor(cursor) else { return badRequest("Invalid cursor.") }
            params = decoded
        }
        let limit = min(50_000, max(1, Int(params["limit"] ?? "") ?? options.defaultAggregatesLimit))
        let offset = max(0, Int(params["offset"] ?? "") ?? 0)
        let descending = params["sort"] == "desc"

        var bars: [PolygonBar]
        switch timespan {
        case "day" where size == 1:
            bars = data.dailyBars(symbol: symbol, from: fromDate, through: toDate)
        case "minute":
            bars = data.tradingDays(from: fromDate, through: toDate).flatMap {
                SampleRouter.bucket(data.minuteBars(symbol: symbol, date: $0), minutes: size)
            }
        case "hour":
            bars = data.tradingDays(from: fromDate, through: toDate).flatMap {
                SampleRouter.bucket(data.minuteBars(symbol: symbol, date: $0), minutes: size * 60)
            }
        default:
            return badRequest("The sample server serves day (multiplier 1), minute and hour bars.")
        }
        if descending { bars.reverse() }
        let total = bars.count
        let pageBars = offset < total ? Array(bars[offset..<min(total, offset + limit)]) : []
        var nextURL: String?
        if offset + limit < total {
            var next = params
            next["offset"] = String(offset + limit)
            next["limit"] = String(limit)
            let base = state.baseURL.withLock { $0 }
            nextURL = "\(base)/v2/aggs/ticker/\(symbol)/range/\(multiplier)/\(timespan)/\(from)/\(to)?cursor=\(SampleRouter.encodeCursor(next))"
        }
        var page = PolygonAggregatesPage<PolygonBar>(ticker: symbol, requestID: state.nextRequestID(), adjusted: params["adjusted"] != "false",
                                                    results: pageBars.isEmpty ? nil : pageBars, nextURL: nextURL)
        page.queryCount = total
        page.count = pageBars.isEmpty ? nil : pageBars.count
        return encoded(page)
    }

    private func tickerDetails(_ symbol: String) -> HTTPServerResponse {
        guard let details = data.details(symbol: symbol) else { return notFound(message: "Ticker not found.") }
        struct Envelope: Encodable {
            var results: PolygonTickerDetails
            var status = "OK"
            var request_id: String
        }
        return encoded(Envelope(results: details, request_id: state.nextRequestID()))
    }

    private func tickerList(_ request: HTTPServerRequest) -> HTTPServerResponse {
        var params: [String: String] = [:]
        for item in request.queryItems { params[item.name] = item.value ?? "" }
        if let cursor = request.query("cursor") {
            guard let decoded = SampleRouter.decodeCursor(cursor) else { return badRequest("Invalid cursor.") }
            params = decoded
        }
        let limit = min(1000, max(1, Int(params["limit"] ?? "") ?? options.defaultTickerListLimit))
        let offset = max(0, Int(params["offset"] ?? "") ?? 0)
        var entries = data.symbols.sorted().compactMap { data.tickerEntry(symbol: $0) }
        if let market = params["market"], market != "stocks" { entries = [] }
        if let type = params["type"], type != "CS" { entries = [] }
        if params["active"] == "false" { entries = [] }
        let (page, nextURL) = slice(entries, offset: offset, limit: limit, params: params, path: "/v3/reference/tickers")
        return encoded(PolygonTickerListPage(results: page, requestID: state.nextRequestID(), nextURL: nextURL))
    }

    /// `/benzinga/v1/earnings`: filters `ticker`, `date`, `date.gte`, `date.lte`; `limit`
    /// (default 100) with cursor pagination; sorted by date.
    private func earnings(_ request: HTTPServerRequest) -> HTTPServerResponse {
        var params: [String: String] = [:]
        for item in request.queryItems { params[item.name] = item.value ?? "" }
        if let cursor = request.query("cursor") {
            guard let decoded = SampleRouter.decodeCursor(cursor) else { return badRequest("Invalid cursor.") }
            params = decoded
        }
        for key in ["date", "date.gte", "date.lte"] {
            if let value = params[key], CivilDate(value) == nil { return badRequest("Could not parse the \(key) parameter.") }
        }
        let symbols = params["ticker"].map { [$0] } ?? data.symbols.sorted()
        var rows = symbols.flatMap { data.earnings(symbol: $0) }
        if let day = params["date"] { rows = rows.filter { $0.date == day } }
        if let from = params["date.gte"] { rows = rows.filter { $0.date >= from } }
        if let to = params["date.lte"] { rows = rows.filter { $0.date <= to } }
        rows.sort { ($0.date, $0.ticker) < ($1.date, $1.ticker) }
        if params["sort"] == "date.desc" { rows.reverse() }
        let limit = min(50_000, max(1, Int(params["limit"] ?? "") ?? 100))
        let offset = max(0, Int(params["offset"] ?? "") ?? 0)
        let (page, nextURL) = slice(rows, offset: offset, limit: limit, params: params, path: "/benzinga/v1/earnings")
        return encoded(PolygonResultsPage(results: page, requestID: state.nextRequestID(), nextURL: nextURL))
    }

    /// `/stocks/vX/float?ticker=…`: the symbol's one float row, or an empty `results`.
    private func freeFloat(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let rows = request.query("ticker").flatMap { data.freeFloat(symbol: $0) }.map { [$0] } ?? []
        return encoded(PolygonResultsPage(results: rows, requestID: state.nextRequestID()))
    }

    private func notEntitled() -> HTTPServerResponse {
        json(["status": "NOT_AUTHORIZED", "request_id": state.nextRequestID(),
              "message": "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"], status: 403)
    }

    // MARK: - Helpers

    /// One page of `rows` and the `next_url` (a cursor carrying `params` with the next offset).
    private func slice<Row>(_ rows: [Row], offset: Int, limit: Int, params: [String: String], path: String) -> ([Row], String?) {
        let page = offset < rows.count ? Array(rows[offset..<min(rows.count, offset + limit)]) : []
        guard offset + limit < rows.count else { return (page, nil) }
        var next = params
        next["offset"] = String(offset + limit)
        next["limit"] = String(limit)
        let base = state.baseURL.withLock { $0 }
        return (page, "\(base)\(path)?cursor=\(SampleRouter.encodeCursor(next))")
    }

    /// Aggregates one day's minute bars into `minutes`-minute bars.
    static func bucket(_ bars: [PolygonBar], minutes: Int) -> [PolygonBar] {
        guard minutes > 1 else { return bars }
        let width = Int64(minutes) * 60_000
        var result: [PolygonBar] = []
        var current: PolygonBar?
        var notional = 0.0
        var currentStart: Int64 = 0
        for bar in bars {
            // Buckets start at multiples of their width since the Unix epoch (for 5, 15, 30 and
            // 60 minutes these are New York clock boundaries: the UTC offset is whole hours).
            let alignedStart = bar.timestamp - ((bar.timestamp % width) + width) % width
            if var open = current, currentStart == alignedStart {
                open.high = max(open.high, bar.high)
                open.low = min(open.low, bar.low)
                open.close = bar.close
                open.volume += bar.volume
                open.transactions = (open.transactions ?? 0) + (bar.transactions ?? 0)
                notional += (bar.vwap ?? bar.close) * bar.volume
                open.vwap = (notional / open.volume * 10_000).rounded() / 10_000
                current = open
            } else {
                if let done = current { result.append(done) }
                var fresh = bar
                fresh.timestamp = alignedStart
                current = fresh
                currentStart = alignedStart
                notional = (bar.vwap ?? bar.close) * bar.volume
            }
        }
        if let done = current { result.append(done) }
        return result
    }

    /// `YYYY-MM-DD` or Unix milliseconds (as New York date).
    static func date(_ text: String) -> CivilDate? {
        if let date = CivilDate(text) { return date }
        if let ms = Int64(text) { return CivilDate(newYorkDateOfMilliseconds: ms) }
        return nil
    }

    static func encodeCursor(_ params: [String: String]) -> String {
        let text = params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        return Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decodeCursor(_ cursor: String) -> [String: String]? {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let raw = Data(base64Encoded: base64), let text = String(data: raw, encoding: .utf8) else { return nil }
        var params: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            params[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        return params
    }

    private func encoded<T: Encodable>(_ value: T) -> HTTPServerResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        guard let body = try? encoder.encode(value) else {
            return json(["status": "ERROR", "request_id": state.nextRequestID(), "error": "encoding failed"], status: 500)
        }
        return .json(body)
    }

    private func json(_ object: [String: String], status: Int) -> HTTPServerResponse {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return .json(body, status: status)
    }

    private func badRequest(_ message: String) -> HTTPServerResponse {
        json(["status": "ERROR", "request_id": state.nextRequestID(), "error": message], status: 400)
    }

    private func notFound(message: String = "The requested resource was not found") -> HTTPServerResponse {
        json(["status": "NOT_FOUND", "request_id": state.nextRequestID(), "message": message], status: 404)
    }
}
