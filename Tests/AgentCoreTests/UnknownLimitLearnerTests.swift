import AgentCore
import Testing

@Suite struct UnknownLimitLearnerTests {
    @Test func aCloseRightAfterAnUnacknowledgedPublishHalvesBacksOffCountsAndWarnsOnce() {
        var learner = UnknownLimitLearner()
        let a = learner.published(dataPoints: 64, bytes: 6000, now: .seconds(10))
        _ = learner.acknowledged(a, now: .seconds(10))
        _ = learner.published(dataPoints: 40, bytes: 3000, now: .seconds(11))
        _ = learner.published(dataPoints: 64, bytes: 6000, now: .seconds(11))
        let actions = learner.connectionClosed(now: .milliseconds(11_300))
        #expect(actions.count == 4)
        #expect(actions[0] == .setCaps(dataPoints: 32, bytes: 3000))
        #expect(actions[1] == .backOff(until: .milliseconds(16_300)))
        #expect(actions[2] == .countRateLimited)
        guard case .warn(let text) = actions[3] else {
            Issue.record("\(actions)")
            return
        }
        #expect(text.contains("[server.rate_limits]"))
        #expect(text.contains("agent_rate_limited"))
        #expect(learner.rateLimited == 1)
        #expect(!learner.mayPublish(now: .seconds(16)))
        #expect(learner.mayPublish(now: .milliseconds(16_300)))

        // Again: halved from the cap, the back-off doubles, counted, not logged again.
        _ = learner.published(dataPoints: 32, bytes: 2500, now: .seconds(20))
        let again = learner.connectionClosed(now: .seconds(21))
        #expect(again == [.setCaps(dataPoints: 16, bytes: 1250), .backOff(until: .seconds(31)), .countRateLimited])
        #expect(learner.rateLimited == 2)
    }

    @Test func anOrdinaryDisconnectIsNotALimit() {
        var learner = UnknownLimitLearner()
        // Everything acknowledged.
        let t = learner.published(dataPoints: 5, bytes: 100, now: .seconds(1))
        _ = learner.acknowledged(t, now: .seconds(1))
        #expect(learner.connectionClosed(now: .seconds(1)) == [])
        // Unacknowledged, but long after the publish (a network outage, a keepalive timeout).
        _ = learner.published(dataPoints: 5, bytes: 100, now: .seconds(10))
        #expect(learner.connectionClosed(now: .seconds(30)) == [])
        // Nothing published on the connection.
        #expect(learner.connectionClosed(now: .seconds(31)) == [])
        #expect(learner.rateLimited == 0)
        #expect(learner.dataPointCap == nil && learner.byteCap == nil)
    }

    @Test func theCapsNeverGoBelowTheFloor() {
        var learner = UnknownLimitLearner()
        for i in 0..<30 {
            let now = Duration.seconds(i * 1000)
            _ = learner.published(dataPoints: 1, bytes: 10, now: now)
            _ = learner.connectionClosed(now: now)
        }
        #expect(learner.dataPointCap == 1)
        #expect(learner.byteCap == 512)
        // The back-off is capped too.
        #expect(learner.backOffUntil == .seconds(29 * 1000) + .seconds(300))
    }

    @Test func theBatchGrowsBackSlowlyAfterSuccessThenTheCapIsLifted() {
        var settings = UnknownLimitLearner.Settings()
        settings.growthStreak = 5
        settings.growthInterval = .seconds(60)
        var learner = UnknownLimitLearner(settings: settings)
        _ = learner.published(dataPoints: 40, bytes: 4000, now: .zero)
        _ = learner.connectionClosed(now: .zero)
        #expect(learner.dataPointCap == 20)

        var now = Duration.seconds(1)
        var growths: [Int?] = []
        for _ in 0..<1000 {
            now += .seconds(1)
            let t = learner.published(dataPoints: 1, bytes: 100, now: now)
            for action in learner.acknowledged(t, now: now) {
                if case .setCaps(let points, _) = action { growths.append(points) }
            }
            if learner.dataPointCap == nil { break }
        }
        // A quarter more at most once a minute: 25, 31, 38, 47, 58, 72, then past twice the size that failed: lifted.
        #expect(growths == [25, 31, 38, 47, 58, 72, nil])
        #expect(learner.byteCap == nil)
        #expect(learner.consecutiveCuts == 0)
    }

    @Test func aSuccessfulStreakResetsTheBackOffDoubling() {
        var settings = UnknownLimitLearner.Settings()
        settings.growthStreak = 1
        settings.growthInterval = .zero
        var learner = UnknownLimitLearner(settings: settings)
        _ = learner.published(dataPoints: 8, bytes: 800, now: .zero)
        _ = learner.connectionClosed(now: .zero)
        #expect(learner.consecutiveCuts == 1)
        let t = learner.published(dataPoints: 1, bytes: 100, now: .seconds(10))
        _ = learner.acknowledged(t, now: .seconds(10))
        #expect(learner.consecutiveCuts == 0)
        _ = learner.published(dataPoints: 5, bytes: 800, now: .seconds(20))
        let actions = learner.connectionClosed(now: .seconds(20))
        #expect(actions.contains(.backOff(until: .seconds(25))))
    }
}

@Suite struct LiveReplayShareTests {
    @Test func liveGetsItsShareWhileBothWait() {
        var share = LiveReplayShare(liveShare: 0.5)
        var live = 0
        var replay = 0
        for _ in 0..<1000 {
            switch share.next(liveWaiting: true, replayWaiting: true) {
            case .live?:
                live += 10
                share.charge(.live, dataPoints: 10)
            case .replay?:
                // Replay sends big batches; live still gets half the data points.
                replay += 60
                share.charge(.replay, dataPoints: 60)
            case nil:
                Issue.record("nothing chosen")
            }
        }
        let liveShare = Double(live) / Double(live + replay)
        #expect(liveShare > 0.45 && liveShare < 0.55, "\(liveShare)")
    }

    @Test func aLoneSourceGetsEverythingAndBanksNoCredit() {
        var share = LiveReplayShare(liveShare: 0.25)
        #expect(share.next(liveWaiting: false, replayWaiting: false) == nil)
        // Replay alone for a long time…
        for _ in 0..<100 {
            #expect(share.next(liveWaiting: false, replayWaiting: true) == .replay)
            share.charge(.replay, dataPoints: 50)
        }
        // …then a live reading arrives: it goes next, at once.
        #expect(share.next(liveWaiting: true, replayWaiting: true) == .live)
        share.charge(.live, dataPoints: 1)
        // Live alone for a long time does not lock replay out afterwards either.
        for _ in 0..<100 {
            #expect(share.next(liveWaiting: true, replayWaiting: false) == .live)
            share.charge(.live, dataPoints: 50)
        }
        #expect(share.next(liveWaiting: true, replayWaiting: true) == .replay)
    }

    @Test func replayLeavesAReserveInTheBuckets() {
        let share = LiveReplayShare(reserve: 0.25)
        #expect(share.reserve(for: .live) == 0)
        #expect(share.reserve(for: .replay) == 0.25)
        let limits = SessionLimits(telemetryMessages: RateLimiterTests.limit("10:1"), telemetryDataPoints: RateLimiterTests.limit("100:1"))
        var limiter = RateLimiter(limits: limits, now: .zero, startFull: true)
        // 80 points in the bucket: replay may take 60 and leaves 20 for live.
        #expect(limiter.decision(dataPoints: 60, bytes: nil, reserve: share.reserve(for: .replay), now: .zero) == .now)
        limiter.consume(dataPoints: 60, now: .zero)
        #expect(limiter.decision(dataPoints: 1, bytes: nil, reserve: share.reserve(for: .replay), now: .zero) != .now)
        #expect(limiter.decision(dataPoints: 1, bytes: nil, reserve: share.reserve(for: .live), now: .zero) == .now)
    }
}
