import AgentCore
import Testing

@Suite struct SamplingScheduleTests {
    @Test func groupsFallDueOnTheirGridAndReadOneAtATime() {
        var s = SamplingSchedule()
        let changed = s.configure([.seconds(10): ["b", "a"], .seconds(60): ["c"]], now: .zero)
        #expect(changed)
        #expect(s.nextDeadline == .zero)
        // Both due at start: one read of all three.
        let first = s.tick(now: .zero)
        #expect(first == .names(["a", "b", "c"]))
        #expect(s.inFlight)
        #expect(s.nextDeadline == .seconds(10))
        // The read takes long: the next rounds wait as one pending read.
        let second = s.tick(now: .seconds(10))
        let third = s.tick(now: .seconds(20))
        #expect(second == nil && third == nil)
        #expect(s.pending == .names(["a", "b"]))
        #expect(s.coalesced == 1)
        let next = s.finished()
        #expect(next == .names(["a", "b"]))
        let none = s.finished()
        #expect(none == nil)
        #expect(!s.inFlight)
        // Late by more than an interval: the grid skips ahead instead of bursting.
        let late = s.tick(now: .seconds(95))
        #expect(late == .names(["a", "b", "c"]))
        #expect(s.nextDeadline == .seconds(105))
    }

    /// Issue 10, finding 1: each sampleNow started its own read. A burst is one pending read now.
    @Test func aBurstOfRequestsIsOneRead() {
        var s = SamplingSchedule()
        _ = s.configure([.seconds(10): ["a"]], now: .zero)
        let first = s.requestAll()
        #expect(first == .all)
        var started = 0
        for _ in 0..<10_000 where s.requestAll() != nil { started += 1 }
        #expect(started == 0)
        let due = s.tick(now: .zero)
        #expect(due == nil)
        #expect(s.pending == .all)
        #expect(s.coalesced == 10_000)
        let merged = s.finished()
        let after = s.finished()
        #expect(merged == .all && after == nil)
    }

    @Test func reconfiguringKeepsUnchangedGroupsOnTheirGrid() {
        var s = SamplingSchedule()
        _ = s.configure([.seconds(10): ["a"]], now: .zero)
        _ = s.tick(now: .zero)
        _ = s.finished()
        let same = s.configure([.seconds(10): ["a"]], now: .seconds(3))
        #expect(!same)
        let added = s.configure([.seconds(10): ["a"], .seconds(2): ["b"]], now: .seconds(3))
        #expect(added)
        #expect(s.nextDeadline == .seconds(3))  // the new group is due now
        let b = s.tick(now: .seconds(3))
        #expect(b == .names(["b"]))
        #expect(s.nextDeadline == .seconds(5))
        _ = s.finished()
        let both = s.tick(now: .seconds(10))
        #expect(both == .names(["a", "b"]))
    }
}
