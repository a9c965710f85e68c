import AgentCore
import Testing

private func s(_ value: Double) -> Duration { .milliseconds(Int(value * 1000)) }

@Suite("Long press: re-provision on hold-then-release, and nothing else")
struct LongPressTests {
    @Test("hold past the threshold, then release: one re-provision request, with LED feedback on the way")
    func longPress() {
        var detector = LongPressDetector(hold: s(5))
        #expect(detector.start(pressed: false, at: .zero).isEmpty)
        #expect(detector.buttonChanged(pressed: true, at: s(1)) == [.pressed(at: s(1))])
        #expect(detector.feedback == .holding)
        #expect(detector.deadline == s(6))
        #expect(detector.tick(now: s(5.9)).isEmpty)
        #expect(detector.tick(now: s(6)) == [.thresholdReached(at: s(6))])
        #expect(detector.feedback == .releaseNow)
        #expect(detector.buttonChanged(pressed: false, at: s(7.5)) == [
            .released(at: s(7.5), heldFor: s(6.5)), .reprovisionRequested(at: s(7.5)),
        ])
        #expect(detector.feedback == .none)
    }

    @Test("releasing early does nothing")
    func shortPress() {
        var detector = LongPressDetector(hold: s(5))
        _ = detector.start(pressed: false, at: .zero)
        _ = detector.buttonChanged(pressed: true, at: s(1))
        let events = detector.tick(now: s(3)) + detector.buttonChanged(pressed: false, at: s(5.99))
        #expect(events == [.released(at: s(5.99), heldFor: s(4.99))])
        #expect(detector.feedback == .none)
    }

    @Test("a button pressed at start is ignored until seen released (stuck or inverted button)")
    func pressedAtStart() {
        var detector = LongPressDetector(hold: s(5))
        #expect(detector.start(pressed: true, at: .zero) == [.ignoredPressedAtStart(at: .zero)])
        #expect(!detector.isArmed)
        // However long it stays pressed, nothing happens.
        #expect(detector.tick(now: s(60)).isEmpty)
        #expect(detector.deadline == nil)
        #expect(detector.feedback == .none)
        #expect(detector.buttonChanged(pressed: false, at: s(61)) == [.armed(at: s(61))])
        #expect(detector.isArmed)
        // From now on presses count.
        _ = detector.buttonChanged(pressed: true, at: s(70))
        _ = detector.tick(now: s(75))
        #expect(detector.buttonChanged(pressed: false, at: s(76)).contains(.reprovisionRequested(at: s(76))))
    }

    @Test("an inverted button (reads pressed at rest) pressed now and then never asks for re-provisioning")
    func invertedButton() {
        var detector = LongPressDetector(hold: s(5))
        _ = detector.start(pressed: true, at: .zero)
        // Each "press" of an inverted button is a brief release; at rest it reads pressed, so every rest is a
        // hold that turns stuck (after 20 s) before the next press comes along.
        var events: [LongPressDetector.Event] = []
        for t in stride(from: 60.0, to: 600.0, by: 60.0) {
            events += detector.tick(now: s(t))
            events += detector.buttonChanged(pressed: false, at: s(t))
            events += detector.buttonChanged(pressed: true, at: s(t + 0.2))
        }
        events += detector.tick(now: s(700))
        #expect(!events.contains { if case .reprovisionRequested = $0 { return true } else { return false } })
        #expect(events.contains { if case .stuck = $0 { return true } else { return false } })
    }

    @Test("held far longer than anyone would: stuck, and its release does nothing")
    func stuckWhileRunning() {
        var detector = LongPressDetector(hold: s(5))
        #expect(detector.stuckAfter == s(20))
        _ = detector.start(pressed: false, at: .zero)
        _ = detector.buttonChanged(pressed: true, at: s(1))
        #expect(detector.tick(now: s(30)) == [.thresholdReached(at: s(6)), .stuck(at: s(21))])
        #expect(detector.feedback == .none)
        #expect(detector.buttonChanged(pressed: false, at: s(40)) == [.released(at: s(40), heldFor: s(39))])
    }

    @Test("through the debouncer: a bouncy long press gives one request; the threshold is reported before the release")
    func buttonWatch() {
        var watch = ButtonWatch(initial: .low, at: .zero, debounce: .milliseconds(50), hold: s(1))
        #expect(watch.startEvents.isEmpty)
        var outputs: [ButtonWatch.Output] = []
        func feed(_ level: LineLevel, _ t: Double) {
            outputs += watch.tick(now: s(t))
            outputs += watch.edge(EdgeEvent(level: level, timestamp: s(t)))
        }
        feed(.high, 1.000); feed(.low, 1.002); feed(.high, 1.004)   // press, with bounce
        outputs += watch.tick(now: s(1.5))
        #expect(watch.feedback == .holding)
        outputs += watch.tick(now: s(2.1))
        #expect(watch.feedback == .releaseNow)
        feed(.low, 2.5); feed(.high, 2.501); feed(.low, 2.503)      // release, with bounce
        outputs += watch.tick(now: s(3))
        let events = outputs.compactMap { output -> LongPressDetector.Event? in
            if case .button(let event) = output { return event } else { return nil }
        }
        #expect(events == [
            .pressed(at: s(1.004)), .thresholdReached(at: s(2.004)),
            .released(at: s(2.503), heldFor: s(1.499)), .reprovisionRequested(at: s(2.503)),
        ])
    }

    @Test("a threshold that passed while no tick came is still reported before the release")
    func lateThreshold() {
        var watch = ButtonWatch(initial: .low, at: .zero, debounce: .zero, hold: s(1))
        _ = watch.edge(EdgeEvent(level: .high, timestamp: s(1)))
        // The next thing the watcher sees is the release, 3 s later.
        let outputs = watch.edge(EdgeEvent(level: .low, timestamp: s(4)))
        #expect(outputs == [
            .button(.thresholdReached(at: s(2))), .change(EdgeEvent(level: .low, timestamp: s(4))),
            .button(.released(at: s(4), heldFor: s(3))), .button(.reprovisionRequested(at: s(4))),
        ])
    }

    @Test("a pressed-at-start button through the watcher")
    func watchPressedAtStart() {
        let watch = ButtonWatch(initial: .high, at: s(2), debounce: .milliseconds(50), hold: s(1))
        #expect(watch.startEvents == [.ignoredPressedAtStart(at: s(2))])
    }
}
