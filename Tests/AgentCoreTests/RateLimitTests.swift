import AgentCore
import Testing

@Suite struct RateLimitTests {
    @Test func parsesSeveralWindowsAsThingsBoardWritesThem() throws {
        let limit = try #require(try RateLimit.parse("10:1,300:60"))
        #expect(limit.windows == [RateLimitWindow(capacity: 10, seconds: 1), RateLimitWindow(capacity: 300, seconds: 60)])
        #expect(limit.smallestCapacity == 10)
        #expect(limit.description == "10:1,300:60")
        let spaced = try #require(try RateLimit.parse(" 20:1 , 600 : 60 "))
        #expect(spaced.description == "20:1,600:60")
    }

    @Test func emptyMeansNoLimit() throws {
        #expect(try RateLimit.parse("") == nil)
        #expect(try RateLimit.parse("   ") == nil)
    }

    @Test(arguments: [
        ("10", "not a window"), ("10:1,", "not a window"), ("10/1", "not a window"), ("a:1", "not a window"),
        ("10:1:5", "not a window"), ("-1:1", "not a window"), ("0:1", "capacity must be from 1"),
        ("10:0", "window must be from 1"), ("1000000001:1", "capacity must be from 1"), ("10:99999999", "window must be from 1"),
        ("99999999999:1", "not a window"),
    ])
    func badStringsSayWhatIsWrongAndTheForm(_ text: String, _ expected: String) {
        do {
            _ = try RateLimit.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error)")
            #expect(error.description.contains("like \"10:1,300:60\""), "\(error)")
        }
    }

    @Test func boundedInWindowsAndLength() {
        let many = Array(repeating: "1:1", count: RateLimit.maxWindows + 1).joined(separator: ",")
        #expect(throws: RateLimitError.self) { try RateLimit.parse(many) }
        let long = String(repeating: " ", count: RateLimit.maxTextLength) + "1:1"
        do {
            _ = try RateLimit.parse(long)
            Issue.record("accepted a long string")
        } catch {
            #expect(error.reason == .tooLong)
        }
    }
}

@Suite struct TokenBucketTests {
    let window = RateLimitWindow(capacity: 10, seconds: 1)

    @Test func keepsEightyPercentOfTheWindow() {
        let bucket = TokenBucket(window: self.window, now: .zero, startFull: true)
        #expect(bucket.capacity == 8)
        #expect(bucket.refillRate == 8)
        #expect(bucket.available(at: .zero) == 8)
        // A window of 1 still lets one through, refilled at 80 % of the server's rate.
        let one = TokenBucket(window: RateLimitWindow(capacity: 1, seconds: 10), now: .zero, startFull: true)
        #expect(one.capacity == 1)
        #expect(abs(one.refillRate - 0.08) < 1e-12)
        #expect(one.delay(for: 1, now: .zero) == .zero)
    }

    @Test func refillsGreedilyNotAllAtTheEndOfTheWindow() {
        var bucket = TokenBucket(window: self.window, now: .zero, startFull: true)
        bucket.consume(8, now: .zero)
        #expect(bucket.delay(for: 1, now: .zero) == .milliseconds(125))
        #expect(bucket.delay(for: 4, now: .zero) == .milliseconds(500))
        #expect(bucket.available(at: .milliseconds(250)) == 2)
        #expect(bucket.delay(for: 4, now: .milliseconds(250)) == .milliseconds(250))
        // Never more than the capacity, however long it waits.
        #expect(bucket.available(at: .seconds(3600)) == 8)
        // More than the bucket ever holds: never.
        #expect(bucket.delay(for: 9, now: .seconds(10)) == nil)
    }

    @Test func startsEmptyByDefaultAndTimeGoingBackAddsNothing() {
        var bucket = TokenBucket(window: self.window, now: .seconds(100))
        #expect(bucket.available(at: .seconds(100)) == 0)
        #expect(bucket.delay(for: 1, now: .seconds(100)) == .milliseconds(125))
        #expect(bucket.available(at: .seconds(50)) == 0)
        bucket.consume(1, now: .milliseconds(100_125))
        #expect(bucket.available(at: .milliseconds(100_125)) == 0)
    }

    @Test func aReserveIsLeftButNeverBlocksACostThatFits() {
        var bucket = TokenBucket(window: self.window, now: .zero, startFull: true)
        bucket.consume(2, now: .zero)
        #expect(bucket.delay(for: 4, reserve: 2, now: .zero) == .zero)
        #expect(bucket.delay(for: 5, reserve: 0, now: .zero) == .zero)
        #expect(bucket.delay(for: 5, reserve: 2, now: .zero) == .milliseconds(125))
        // cost + reserve over the capacity: the reserve shrinks to what is left (8 - 7 = 1).
        #expect(bucket.delay(for: 7, reserve: 2, now: .zero) == .milliseconds(250))
        #expect(bucket.delay(for: 8, reserve: 2, now: .zero) == .milliseconds(250))
    }
}

@Suite struct RateLimiterTests {
    /// A limit written out (the tests' strings are valid; `nil` would show as "no limit" and fail the tests).
    static func limit(_ text: String) -> RateLimit? { (try? RateLimit.parse(text)) ?? nil }

    static let cloud = SessionLimits(
        maxPayloadSize: 65536, maxInflightMessages: 100, messages: limit("10:1,60:60"),
        telemetryMessages: limit("10:1,60:60"), telemetryDataPoints: limit("10:1,300:60"))

    @Test func noLimitsSendsAtOnce() {
        let limiter = RateLimiter(limits: .none, now: .zero)
        #expect(limiter.decision(dataPoints: 1_000_000, bytes: 10_000_000, now: .zero) == .now)
        #expect(limiter.maxDataPointsPerMessage == nil)
    }

    @Test func telemetryIsChargedToMessagesAndDataPointsAndOtherMessagesToTheirOwnBucket() {
        var limiter = RateLimiter(limits: Self.cloud, now: .zero, startFull: true)
        #expect(limiter.maxDataPointsPerMessage == 8)
        #expect(limiter.decision(dataPoints: 8, bytes: 100, now: .zero) == .now)
        limiter.consume(dataPoints: 8, now: .zero)
        // The 1-second data-point window (8 at 80 %) is empty: 3 more points refill in 375 ms.
        #expect(limiter.decision(dataPoints: 3, bytes: 100, now: .zero) == .wait(.milliseconds(375)))
        // An RPC reply has no data points: the regular bucket is still full.
        #expect(limiter.decision(dataPoints: 0, bytes: 100, now: .zero) == .now)
    }

    @Test func everyWindowAppliesAtOnce() {
        // Telemetry messages 10:1,60:60 → 8:1 and 48:60 at 80 %. 100 one-point messages: the second window alone
        // would need (100 - 8) / 8 = 11.5 s; the minute window needs (100 - 48) / 0.8 = 65 s, and governs.
        var limiter = RateLimiter(limits: Self.cloud, now: .zero, startFull: true)
        var now = Duration.zero
        var sent = 0
        var waits = 0
        while sent < 100 && waits < 10_000 {
            switch limiter.decision(dataPoints: 1, bytes: 50, now: now) {
            case .now:
                limiter.consume(dataPoints: 1, now: now)
                sent += 1
            case .wait(let d):
                #expect(d > .zero)
                now += d
                waits += 1
            case .never:
                Issue.record("never")
                return
            }
        }
        #expect(sent == 100)
        #expect(now >= .milliseconds(64_900) && now <= .milliseconds(65_100), "\(now)")
    }

    @Test func aMessageOverTheSmallestWindowOrThePayloadLimitIsNever() {
        let limiter = RateLimiter(limits: Self.cloud, now: .zero)
        #expect(limiter.decision(dataPoints: 9, bytes: 100, now: .zero) == .never(.tooManyDataPoints(9, limit: 8)))
        #expect(limiter.decision(dataPoints: 1, bytes: 65537, now: .zero) == .never(.tooLarge(bytes: 65537, limit: 65536)))
        // Started empty: the first message waits for one token of the slowest window (48:60 refills 0.8 a second).
        #expect(limiter.decision(dataPoints: 1, bytes: 65536, now: .zero) == .wait(.milliseconds(1250)))
        #expect(limiter.decision(dataPoints: 1, bytes: 65536, now: .milliseconds(1250)) == .now)
    }

    @Test func nullLimitsAreUnlimitedBucketByBucket() {
        var limits = Self.cloud
        limits.telemetryDataPoints = nil
        var limiter = RateLimiter(limits: limits, now: .zero, startFull: true)
        #expect(limiter.decision(dataPoints: 5000, bytes: 100, now: .zero) == .now)
        limiter.consume(dataPoints: 5000, now: .zero)
        #expect(limiter.maxDataPointsPerMessage == nil)
    }

    @Test func newLimitsKeepTheLevelOfWindowsThatStayed() {
        var limiter = RateLimiter(limits: Self.cloud, now: .zero, startFull: true)
        limiter.consume(dataPoints: 8, now: .zero)
        var changed = Self.cloud
        changed.telemetryDataPoints = Self.limit("10:1,1000:60")
        limiter.update(changed, now: .zero)
        // 10:1 kept its (empty) level; the new 1000:60 window starts empty too, refilling 13.33 a second.
        #expect(limiter.decision(dataPoints: 1, bytes: 10, now: .zero) == .wait(.milliseconds(125)))
    }
}

@Suite struct TokenBucketRobustnessTests {
    @Test func handBuiltZerosAndOddFractionsStayFinite() {
        let zero = TokenBucket(window: RateLimitWindow(capacity: 0, seconds: 0), fraction: .nan, now: .zero)
        #expect(zero.capacity == 1)
        #expect(zero.refillRate.isFinite && zero.refillRate > 0)
        #expect(zero.delay(for: 1, now: .zero) != nil)
        #expect(zero.available(at: .seconds(10)) == 1)
    }
}
