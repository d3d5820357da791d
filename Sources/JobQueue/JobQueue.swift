/// Placeholder until the queue lands.
enum JobQueuePlaceholder {}
