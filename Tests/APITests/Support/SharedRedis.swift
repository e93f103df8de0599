import Redis
import Testing

/// The shared Redis of `tools/stack`, for tests about the cache and the analysis queue.
///
/// Never `try?`: without Redis those tests would still pass, having tested the path without
/// it. A missing or invalid setting is a failure of the test that asked.
func sharedRedisSettings() -> RedisSettings? {
    do {
        guard let settings = try RedisSettings.fromEnvironment() else {
            Issue.record("this test needs Redis, and VIGIL_REDIS=off is set")
            return nil
        }
        return settings
    } catch {
        Issue.record(error, "the VIGIL_REDIS_* settings are invalid")
        return nil
    }
}
