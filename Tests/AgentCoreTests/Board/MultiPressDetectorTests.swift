import AgentCore
import Testing

/// The claiming gesture: three short presses within two seconds, read from the long-press detector's events.
@Suite struct MultiPressDetectorTests {
    /// Drives a long-press detector (hold 5 s) and the gesture detector together with (press, release) times in ms.
    struct Button {
        var long = LongPressDetector(hold: .seconds(5))
        var gesture: MultiPressDetector
        var outcomes: [MultiPressDetector.Outcome] = []
        var longEvents: [LongPressDetector.Event] = []

        init(cooldown: Duration = .seconds(60), pressedAtStart: Bool = false) {
            self.gesture = MultiPressDetector(cooldown: cooldown)
            self.feed(self.long.start(pressed: pressedAtStart, at: .zero))
        }

        mutating func feed(_ events: [LongPressDetector.Event]) {
            self.longEvents += events
            for event in events { if let outcome = self.gesture.handle(event) { self.outcomes.append(outcome) } }
        }

        mutating func press(_ down: Int, _ up: Int) {
            self.feed(self.long.buttonChanged(pressed: true, at: .milliseconds(down)))
            self.feed(self.long.tick(now: .milliseconds(up)))
            self.feed(self.long.buttonChanged(pressed: false, at: .milliseconds(up)))
        }
    }

    @Test func threeShortPressesWithinTwoSecondsAreTheGesture() {
        var button = Button()
        button.press(1000, 1150)
        button.press(1500, 1650)
        #expect(button.outcomes.isEmpty)
        button.press(2000, 2200)
        #expect(button.outcomes == [.gesture(at: .milliseconds(2200))])
        #expect(!button.longEvents.contains { if case .reprovisionRequested = $0 { return true } else { return false } })
    }

    @Test func tooSlowOrTooLongPressesAreNot() {
        var slow = Button()
        slow.press(0, 100)
        slow.press(1000, 1100)
        slow.press(2100, 2200)  // 2.2 s after the first press
        #expect(slow.outcomes.isEmpty)
        // ...but the last two and a fourth within two seconds are.
        slow.press(2600, 2700)
        #expect(slow.outcomes == [.gesture(at: .milliseconds(2700))])

        var long = Button()
        long.press(0, 100)
        long.press(300, 1200)  // 900 ms: not short, the count starts again
        long.press(1400, 1500)
        long.press(1700, 1800)
        #expect(long.outcomes.isEmpty)
    }

    @Test func aLongPressStillReprovisionsAndResetsTheCount() {
        var button = Button()
        button.press(0, 100)
        button.press(300, 400)
        button.press(600, 6000)  // held past the 5 s threshold
        #expect(button.outcomes.isEmpty)
        #expect(button.longEvents.contains(.reprovisionRequested(at: .milliseconds(6000))))
        button.press(6300, 6400)
        #expect(button.outcomes.isEmpty)
    }

    @Test func aButtonPressedAtStartCountsOnlyOnceReleased() {
        var button = Button(pressedAtStart: true)
        button.feed(button.long.buttonChanged(pressed: false, at: .milliseconds(100)))  // armed, not a press
        button.press(200, 300)
        button.press(400, 500)
        #expect(button.outcomes.isEmpty)
        button.press(600, 700)
        #expect(button.outcomes == [.gesture(at: .milliseconds(700))])
    }

    @Test func aChatteringButtonMakesAtMostOneGesturePerCooldown() {
        var button = Button(cooldown: .seconds(60))
        var t = 0
        for _ in 0..<300 {  // 30 s of 10 Hz chatter
            button.press(t, t + 30)
            t += 100
        }
        let gestures = button.outcomes.filter { if case .gesture = $0 { return true } else { return false } }
        #expect(gestures.count == 1)
        #expect(button.outcomes.count == 100)  // the rest are refused, each saying when one would count
        if case .refused(_, let retryIn)? = button.outcomes.last {
            #expect(retryIn > .seconds(30) && retryIn < .seconds(31))
        } else {
            Issue.record("the repeats are not refused: \(button.outcomes.suffix(2))")
        }
        button.press(61_000, 61_050)
        button.press(61_200, 61_250)
        button.press(61_400, 61_450)
        #expect(button.outcomes.last == .gesture(at: .milliseconds(61_450)))
    }
}
