import AgentService
import AgentTestSupport
import Synchronization
import Testing

/// The run loop's queue: every event in order, server messages bounded, one consumer woken only when it waits.
@Suite struct EventQueueTests {
    @Test func eventsComeOutInTheOrderTheyWentIn() async {
        let queue = EventQueue<Int>()
        // (One expectation per check, not per event: the suite runs beside the others on a small cooperative pool.)
        #expect((0..<1000).allSatisfy { queue.append($0) == .queued })
        var out: [Int] = []
        while let i = queue.next() { out.append(i) }
        #expect(out == Array(0..<1000))
        #expect(queue.next() == nil)
        #expect(queue.count == 0)
    }

    /// The ring grows while its oldest events are not at its start, and starts afresh once drained.
    @Test func orderSurvivesGrowthAroundTheRing() {
        let queue = EventQueue<Int>()
        var taken: [Int] = []
        var next = 0
        for round in 0..<50 {
            for _ in 0..<(7 + round * 13) {
                queue.append(next)
                next += 1
            }
            for _ in 0..<(5 + round * 11) { taken.append(queue.next() ?? -1) }
        }
        while let i = queue.next() { taken.append(i) }
        #expect(taken == Array(0..<next))
        queue.append(-1)
        #expect(queue.next() == -1)
    }

    /// Several threads at once: nothing is lost, and each thread's events keep their order.
    @Test func eachProducersOrderIsKeptAndNothingIsLost() async throws {
        let queue = EventQueue<(producer: Int, n: Int)>()
        let perProducer = 2_000
        let producers = try (0..<4).map { p in
            try JoinableThread { for n in 0..<perProducer { queue.append((p, n)) } }
        }
        var last = [Int](repeating: -1, count: producers.count)
        var taken = 0
        var outOfOrder = 0
        while taken < producers.count * perProducer {
            guard await queue.wait() else { break }
            while let (p, n) = queue.next().map({ ($0.producer, $0.n) }) {
                if n != last[p] + 1 { outOfOrder += 1 }
                last[p] = n
                taken += 1
            }
        }
        for producer in producers { producer.join() }
        #expect(outOfOrder == 0)
        #expect(taken == producers.count * perProducer)
        #expect(last == [Int](repeating: perProducer - 1, count: producers.count))
    }

    /// At most `limit` limited events wait; more are refused until the consumer takes one. Other events are never
    /// refused, and do not count against the limit.
    @Test func limitedEventsAreBounded() {
        let queue = EventQueue<String>(limit: 3)
        #expect((0..<3).map { queue.append("m\($0)", limited: true) } == [.queued, .queued, .queued])
        #expect(queue.append("m3", limited: true) == .full)
        #expect((0..<100).allSatisfy { queue.append("a\($0)") == .queued })
        #expect(queue.append("m4", limited: true) == .full)
        #expect(queue.next() == "m0")
        #expect(queue.append("m5", limited: true) == .queued)
        #expect(queue.append("m6", limited: true) == .full)
        var rest: [String] = []
        while let e = queue.next() { rest.append(e) }
        #expect(rest == ["m1", "m2"] + (0..<100).map { "a\($0)" } + ["m5"])
        // Taking the unlimited ones freed nothing; taking the limited ones freed their places.
        #expect((0..<3).map { queue.append("n\($0)", limited: true) } == [.queued, .queued, .queued])
        #expect(queue.append("n3", limited: true) == .full)
    }

    /// Limited events' costs add up to at most `costLimit`: one that would go past it is refused, even below the
    /// count limit, and taking an event gives its cost back. Costs given with unlimited events count for nothing.
    @Test func limitedEventsAreBoundedInCost() {
        let queue = EventQueue<String>(limit: 100, costLimit: 1_000)
        #expect(queue.append("a", limited: true, cost: 600) == .queued)
        #expect(queue.append("b", limited: true, cost: 401) == .full)
        #expect(queue.append("c", limited: true, cost: 400) == .queued)
        #expect(queue.append("d", limited: true, cost: 1) == .full)
        #expect(queue.append("x", cost: 5_000) == .queued)
        #expect(queue.next() == "a")
        #expect(queue.append("e", limited: true, cost: 600) == .queued)
        #expect(queue.append("f", limited: true, cost: 1) == .full)
        #expect(queue.append("g", limited: true, cost: 1_001) == .full)
        var rest: [String] = []
        while let e = queue.next() { rest.append(e) }
        #expect(rest == ["c", "x", "e"])
        #expect(queue.append("h", limited: true, cost: 1_000) == .queued)
    }

    @Test func aLimitOfZeroRefusesEveryLimitedEvent() {
        let queue = EventQueue<Int>(limit: 0)
        #expect(queue.append(1, limited: true) == .full)
        #expect(queue.append(2) == .queued)
        #expect(queue.next() == 2)
    }

    /// wait() returns at once while events are queued; a consumer that waits is woken by an event added from a
    /// thread that is not Swift's.
    @Test func aWaitingConsumerIsWokenByAnEventFromAnotherThread() async throws {
        let queue = EventQueue<Int>()
        queue.append(1)
        #expect(await queue.wait())
        #expect(queue.next() == 1)

        let consumer = Task { () -> [Int] in
            var got: [Int] = []
            while got.count < 3, await queue.wait() {
                while let i = queue.next() { got.append(i) }
            }
            return got
        }
        for i in 2...3 {
            try await Self.until("the consumer waits for \(i)") { queue.consumerIsWaiting }
            let producer = try JoinableThread { queue.append(i) }
            producer.join()
        }
        try await Self.until("the consumer waits for 4") { queue.consumerIsWaiting }
        queue.append(4)
        #expect(await consumer.value == [2, 3, 4])
    }

    /// Events added as not urgent take their place in line but wake a waiting consumer only once `quietLimit` of
    /// them wait; an urgent event wakes it at once, and it then takes the quiet ones before it too, in order.
    @Test func quietEventsWakeTheConsumerOnlyInNumbers() async throws {
        let queue = EventQueue<Int>()
        queue.append(1, urgent: false)
        queue.append(2, urgent: false)
        #expect(await queue.wait(quietLimit: 2))
        #expect(queue.next() == 1)
        #expect(queue.next() == 2)

        let wakeUps = Atomic<Int>(0)
        let consumer = Task { () -> [Int] in
            var got: [Int] = []
            while got.count < 5, await queue.wait(quietLimit: 3) {
                wakeUps.add(1, ordering: .relaxed)
                while let i = queue.next() { got.append(i) }
            }
            return got
        }
        try await Self.until("the consumer waits") { queue.consumerIsWaiting }
        queue.append(3, urgent: false)
        queue.append(4, urgent: false)
        try await Task.sleep(for: .milliseconds(50))
        #expect(queue.consumerIsWaiting, "two quiet events of three woke the consumer")
        #expect(queue.count == 2)
        queue.append(5, urgent: false)
        try await Self.until("the consumer took the three and waits again") {
            wakeUps.load(ordering: .relaxed) == 1 && queue.consumerIsWaiting
        }
        queue.append(6, urgent: false)
        queue.append(7)
        #expect(await consumer.value == [3, 4, 5, 6, 7])
        #expect(wakeUps.load(ordering: .relaxed) == 2)
    }

    /// Closing wakes a consumer that waits for more quiet events: it takes those queued, then the queue ends.
    @Test func closeHandsOutQuietEventsBelowTheLimit() async throws {
        let queue = EventQueue<Int>()
        let consumer = Task { () -> [Int] in
            var got: [Int] = []
            while await queue.wait(quietLimit: 10) {
                while let i = queue.next() { got.append(i) }
            }
            return got
        }
        try await Self.until("the consumer waits") { queue.consumerIsWaiting }
        queue.append(1, urgent: false)
        queue.close()
        #expect(await consumer.value == [1])
    }

    /// Closing refuses new events but hands out those queued; then wait() returns false, also to a consumer that was
    /// waiting when the queue closed.
    @Test func closeDrainsThenEnds() async throws {
        let queue = EventQueue<Int>()
        queue.append(1)
        queue.append(2, limited: true)
        queue.close()
        #expect(queue.append(3) == .closed)
        #expect(queue.append(4, limited: true) == .closed)
        #expect(await queue.wait())
        #expect(queue.next() == 1)
        #expect(queue.next() == 2)
        #expect(queue.next() == nil)
        #expect(await queue.wait() == false)

        let open = EventQueue<Int>()
        let consumer = Task { await open.wait() }
        try await Self.until("the consumer waits") { open.consumerIsWaiting }
        open.close()
        #expect(await consumer.value == false)
        #expect(open.append(1) == .closed)
    }

    /// Cancelling the consumer's task ends its wait and closes the queue, whether it was waiting already or not.
    @Test func cancellingTheConsumerClosesTheQueue() async throws {
        let queue = EventQueue<Int>()
        let consumer = Task { await queue.wait() }
        try await Self.until("the consumer waits") { queue.consumerIsWaiting }
        consumer.cancel()
        #expect(await consumer.value == false)
        #expect(queue.append(1) == .closed)

        let early = EventQueue<Int>()
        let cancelledFirst = Task {
            while !Task.isCancelled { await Task.yield() }
            return await early.wait()
        }
        cancelledFirst.cancel()
        #expect(await cancelledFirst.value == false)
        #expect(early.append(1) == .closed)
    }

    static func until(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard clock.now < deadline else { throw TestSupportError("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
