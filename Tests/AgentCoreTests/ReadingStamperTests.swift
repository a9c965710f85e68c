import AgentCore
import TBJSON
import Testing

@Suite struct ReadingStamperTests {
    static let build: Int64 = 1_790_000_000_000

    @Test func readingsAreStampedWithTheTimeTheyWereTaken() {
        var s = ReadingStamper(sanity: ClockSanity(buildTime: Self.build))
        let wall = Self.build + 60_000
        let (groups, notices) = s.stamp([("t", .integer(1))], taken: .seconds(9), now: .seconds(10), wall: wall, synchronized: { false })
        #expect(notices.isEmpty)
        #expect(groups == [[Reading(key: "t", value: .integer(1), timestamp: wall - 1000)]])
        // The stored timestamp raises the floor: a clock now set back by a minute is not trusted.
        let (held, holding) = s.stamp([("t", .integer(2))], taken: .seconds(11), now: .seconds(11), wall: wall - 60_000, synchronized: { false })
        #expect(held.isEmpty)
        #expect(holding == [.holding(floor: wall - 1000)])
    }

    /// `stampNow` gives what `stamp` gives while the clock is plausible and nothing is held, and nothing otherwise.
    @Test func stampNowIsStampWithoutTheGroups() {
        var a = ReadingStamper(sanity: ClockSanity(buildTime: Self.build))
        var b = a
        let wall = Self.build + 60_000
        for (taken, now) in [(Duration.seconds(9), Duration.seconds(10)), (.seconds(12), .seconds(11)), (.milliseconds(10_500), .seconds(12))] {
            let ts = a.stampNow(taken: taken, now: now, wall: wall)
            let (groups, _) = b.stamp([("t", .integer(1))], taken: taken, now: now, wall: wall, synchronized: { false })
            #expect(ts != nil && groups.map { $0.map(\.timestamp) } == [[ts!]])
        }
        #expect(a.sanity.floor == b.sanity.floor)
        // A clock set back below the floor: not now (and nothing changed), stamp holds.
        #expect(a.stampNow(taken: .seconds(13), now: .seconds(13), wall: wall - 60_000) == nil)
        #expect(a.sanity.floor == b.sanity.floor && !a.isHolding)
        _ = a.stamp([("t", .integer(2))], taken: .seconds(13), now: .seconds(13), wall: wall - 60_000, synchronized: { false })
        #expect(a.isHolding)
        // Held readings go first: not now even with a good clock.
        #expect(a.stampNow(taken: .seconds(14), now: .seconds(14), wall: wall + 14_000) == nil)
    }

    /// Two rounds 100 ms apart, the second recorded by a loop preempted for 150 ms between reading the monotonic
    /// clock and the wall clock: the rebase alone would stamp the second before the first. Each round still gets
    /// its own, later timestamp (ThingsBoard keeps one value per key and timestamp).
    @Test func noTwoRoundsShareATimestampWhenTheLoopIsPreempted() {
        var s = ReadingStamper(sanity: ClockSanity(buildTime: Self.build))
        let wall = Self.build + 60_000
        let first = s.stamp([("t", .integer(1))], taken: .milliseconds(10_000), now: .milliseconds(10_000), wall: wall + 150, synchronized: { false })
        let second = s.stamp([("t", .integer(2))], taken: .milliseconds(10_100), now: .milliseconds(10_100), wall: wall + 100, synchronized: { false })
        let third = s.stamp([("t", .integer(3))], taken: .milliseconds(10_200), now: .milliseconds(10_200), wall: wall + 200, synchronized: { false })
        let stamps = [first, second, third].flatMap { $0.groups.flatMap { $0.map(\.timestamp) } }
        #expect(stamps == [wall + 150, wall + 151, wall + 200])
        // One reading on its own (stampNow) follows the same rule: a change taken 100 ms before the loop got to it,
        // which rebases onto the previous one's millisecond, gets the next one.
        var n = ReadingStamper(sanity: ClockSanity(buildTime: Self.build))
        let one = n.stampNow(taken: .milliseconds(10_000), now: .milliseconds(10_000), wall: wall + 150)
        let two = n.stampNow(taken: .milliseconds(10_000), now: .milliseconds(10_100), wall: wall + 250)
        let three = n.stampNow(taken: .milliseconds(10_200), now: .milliseconds(10_200), wall: wall + 350)
        #expect([one, two, three] == [wall + 150, wall + 151, wall + 350])
    }

    /// A burst of rounds faster than one a millisecond (a chattering input, bench-publish): each gets a later
    /// timestamp than the last, so they run ahead of the clock, but none is held as if the clock had been set back,
    /// and the floor stays with the clock.
    @Test func aBurstWithinOneMillisecondIsStoredAtOnce() {
        var s = ReadingStamper(sanity: ClockSanity(buildTime: Self.build))
        let wall = Self.build + 60_000
        var stamps: [Int64] = []
        for i in 0..<5_000 {
            let now = Duration.milliseconds(10_000) + .microseconds(Int64(i / 10))
            if i % 2 == 0 {
                let (groups, notices) = s.stamp([("t", .integer(Int64(i)))], taken: now, now: now, wall: wall, synchronized: { false })
                #expect(notices.isEmpty && groups.count == 1)
                stamps += groups.flatMap { $0.map(\.timestamp) }
            } else if let ts = s.stampNow(taken: now, now: now, wall: wall) {
                stamps.append(ts)
            }
        }
        #expect(stamps.count == 5_000 && !s.isHolding)
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0 < $1 })
        #expect(s.sanity.floor == wall)
    }

    /// A burst of readings within one millisecond (a benchmark's, a bouncing input's): each gets the next
    /// millisecond, past the wall clock, and none is held for it (the floor follows the wall clock, not the stamps).
    @Test func aBurstWithinOneMillisecondIsNotTakenForAClockSetBack() {
        var s = ReadingStamper(sanity: ClockSanity(buildTime: Self.build))
        let wall = Self.build + 60_000
        let stamps = (0..<300).map { _ in s.stampNow(taken: .seconds(10), now: .seconds(10), wall: wall) }
        #expect(stamps == (0..<300).map { wall + Int64($0) })
        let (groups, notices) = s.stamp([("t", .integer(1))], taken: .seconds(10), now: .seconds(10), wall: wall + 1, synchronized: { false })
        #expect(notices.isEmpty && !s.isHolding)
        #expect(groups.map { $0.map(\.timestamp) } == [[wall + 300]])
    }

    @Test func heldReadingsGoOutOldestFirstOnceTheClockIsSetAndAreBounded() {
        var s = ReadingStamper(sanity: ClockSanity(buildTime: Self.build), limit: 3)
        for i in 0..<5 {
            let (groups, _) = s.stamp([("t", .integer(Int64(i)))], taken: .seconds(Int64(i)), now: .seconds(Int64(i)), wall: 86_400_000, synchronized: { false })
            #expect(groups.isEmpty)
        }
        #expect(s.held.count == 3)
        #expect(s.dropped == 2)
        let wall = Self.build + 100_000
        let (groups, _) = s.stamp([("t", .integer(9))], taken: .seconds(10), now: .seconds(10), wall: wall, synchronized: { false })
        #expect(groups.map { $0.first?.value } == [.integer(2), .integer(3), .integer(4), .integer(9)])
        #expect(groups.map { $0.first?.timestamp } == [wall - 8000, wall - 7000, wall - 6000, wall])
        #expect(!s.isHolding)
    }

    @Test func aSynchronisedClockLowersAFloorFromTheFuture() {
        var s = ReadingStamper(sanity: ClockSanity(buildTime: Self.build, newestStored: Self.build + 10 * 86_400_000))
        let wall = Self.build + 86_400_000
        var asked = 0
        let (groups, notices) = s.stamp([("t", .integer(1))], taken: .zero, now: .zero, wall: wall, synchronized: { asked += 1; return true })
        #expect(notices == [.floorCorrected])
        #expect(groups.count == 1)
        #expect(asked == 1)
        // A plausible clock never asks the kernel.
        _ = s.stamp([("t", .integer(2))], taken: .seconds(1), now: .seconds(1), wall: wall + 1000, synchronized: { asked += 1; return true })
        #expect(asked == 1)
    }
}
