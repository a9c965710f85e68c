import AgentCore
import Testing

private func ms(_ value: Int) -> Duration { .milliseconds(value) }
private func us(_ value: Int) -> Duration { .microseconds(value) }

/// Feeds `edges` in order, ticking at each edge's time and at every deadline up to `until`, the way the line
/// watcher does; returns every change.
private func run(_ debouncer: inout Debouncer, edges: [EdgeEvent], until end: Duration) -> [EdgeEvent] {
    var changes: [EdgeEvent] = []
    for edge in edges {
        changes += debouncer.tick(now: edge.timestamp)
        changes += debouncer.edge(edge)
    }
    while let deadline = debouncer.deadline, deadline <= end {
        changes += debouncer.tick(now: deadline)
    }
    changes += debouncer.tick(now: end)
    return changes
}

@Suite("Debouncer: waits for a stable level")
struct DebouncerTests {
    @Test("a 2 ms bounce burst on a 20 ms window gives exactly one change, stamped with the last edge")
    func bounceBurst() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: ms(20))
        let start = ms(100)
        // Contact bounce: 9 edges over 2 ms, ending high.
        let edges = (0..<9).map { i in
            EdgeEvent(level: i % 2 == 0 ? .high : .low, timestamp: start + us(250 * i))
        }
        let changes = run(&debouncer, edges: edges, until: start + ms(200))
        #expect(changes == [EdgeEvent(level: .high, timestamp: start + us(2000))])
        #expect(debouncer.level == .high)
    }

    @Test("nothing is reported before the level has held for the whole window")
    func notBeforeWindow() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: ms(20))
        #expect(debouncer.edge(EdgeEvent(level: .high, timestamp: ms(10))).isEmpty)
        #expect(debouncer.deadline == ms(30))
        #expect(debouncer.tick(now: ms(29)).isEmpty)
        #expect(debouncer.tick(now: ms(30)) == [EdgeEvent(level: .high, timestamp: ms(10))])
        #expect(debouncer.deadline == nil)
    }

    @Test("a glitch shorter than the window is no change at all")
    func glitch() {
        var debouncer = Debouncer(initial: .high, at: .zero, window: ms(20))
        let edges = [EdgeEvent(level: .low, timestamp: ms(50)), EdgeEvent(level: .high, timestamp: ms(51))]
        #expect(run(&debouncer, edges: edges, until: ms(500)).isEmpty)
        #expect(debouncer.level == .high)
    }

    @Test("not a rate limit: a burst that ends back at the old level reports nothing, and a later real change is seen")
    func notARateLimit() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: ms(20))
        var edges = [EdgeEvent(level: .high, timestamp: ms(10)), EdgeEvent(level: .low, timestamp: ms(11))]
        // A rate limiter would take the first edge (high) and then ignore the window; this one waits.
        edges.append(EdgeEvent(level: .high, timestamp: ms(25)))
        let changes = run(&debouncer, edges: edges, until: ms(100))
        #expect(changes == [EdgeEvent(level: .high, timestamp: ms(25))])
    }

    @Test("slow, clean toggles each count")
    func cleanToggles() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: ms(20))
        let edges = (1...4).map { EdgeEvent(level: $0 % 2 == 1 ? .high : .low, timestamp: ms(100 * $0)) }
        let changes = run(&debouncer, edges: edges, until: ms(1000))
        #expect(changes == edges)
    }

    @Test("a late tick still reports a level that had settled: the edge that reveals it comes after the change")
    func lateDelivery() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: ms(20))
        _ = debouncer.edge(EdgeEvent(level: .high, timestamp: ms(10)))
        // No tick at 30 ms (the watcher was slow); the next edge arrives at 80 ms.
        let changes = debouncer.edge(EdgeEvent(level: .low, timestamp: ms(80)))
        #expect(changes == [EdgeEvent(level: .high, timestamp: ms(10))])
        #expect(debouncer.level == .high)
        #expect(debouncer.deadline == ms(100))
    }

    @Test("two edges reporting the same level (one missed between) restart the wait")
    func repeatedLevel() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: ms(20))
        _ = debouncer.edge(EdgeEvent(level: .high, timestamp: ms(10)))
        _ = debouncer.edge(EdgeEvent(level: .high, timestamp: ms(25)))
        #expect(debouncer.tick(now: ms(30)).isEmpty)
        #expect(debouncer.tick(now: ms(45)) == [EdgeEvent(level: .high, timestamp: ms(25))])
    }

    @Test("a zero window reports every edge at once")
    func zeroWindow() {
        var debouncer = Debouncer(initial: .low, at: .zero, window: .zero)
        #expect(debouncer.edge(EdgeEvent(level: .high, timestamp: ms(1))) == [EdgeEvent(level: .high, timestamp: ms(1))])
        #expect(debouncer.edge(EdgeEvent(level: .low, timestamp: ms(2))) == [EdgeEvent(level: .low, timestamp: ms(2))])
        #expect(debouncer.deadline == nil)
    }

    @Test("the raw edges of a watched line come in time order around the changes")
    func watchedLineOrder() {
        var line = WatchedLine(initial: .low, at: .zero, debounce: .zero, reportRawEdges: true)
        let edge = EdgeEvent(level: .high, timestamp: ms(5))
        #expect(line.edge(edge) == [.edge(edge), .change(edge)])
        var slow = WatchedLine(initial: .low, at: .zero, debounce: ms(20), reportRawEdges: true)
        _ = slow.edge(EdgeEvent(level: .high, timestamp: ms(5)))
        let late = EdgeEvent(level: .low, timestamp: ms(90))
        #expect(slow.edge(late) == [.change(EdgeEvent(level: .high, timestamp: ms(5))), .edge(late)])
    }

    @Test("a counter counts debounced rising edges only")
    func counterWatch() {
        var counter = CounterWatch(initial: .low, at: .zero, debounce: ms(5))
        var pulses: [EdgeEvent] = []
        var time = ms(100)
        for _ in 0..<3 {
            // Each pulse: a bouncy rise, 30 ms high, a clean fall.
            for (i, level) in [LineLevel.high, .low, .high].enumerated() {
                pulses += counter.tick(now: time + us(300 * i))
                pulses += counter.edge(EdgeEvent(level: level, timestamp: time + us(300 * i)))
            }
            pulses += counter.tick(now: time + ms(30))
            pulses += counter.edge(EdgeEvent(level: .low, timestamp: time + ms(30)))
            pulses += counter.tick(now: time + ms(60))
            time += ms(100)
        }
        #expect(pulses.count == 3)
        #expect(pulses.allSatisfy { $0.level == .high })
    }
}
