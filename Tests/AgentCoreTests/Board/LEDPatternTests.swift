import AgentCore
import Testing

private func ms(_ value: Int) -> Duration { .milliseconds(value) }

@Suite("LED patterns: state → on/off timeline")
struct LEDPatternTests {
    /// How many times the LED switches on in `duration`.
    private func flashes(_ state: LEDState, in duration: Duration) -> Int {
        state.pattern.timeline(for: duration).filter(\.on).count
    }

    @Test("provisioning blinks at 4 Hz: 125 ms on, 125 ms off")
    func provisioning() {
        let timeline = LEDState.provisioning.pattern.timeline(for: ms(1000))
        #expect(timeline.map(\.at) == (0..<8).map { ms(125 * $0) })
        #expect(timeline.map(\.on) == [true, false, true, false, true, false, true, false])
    }

    @Test("connecting, offline and buffering blink at 1 Hz")
    func slowBlink() {
        for state in [LEDState.connecting, .offline, .buffering] {
            let timeline = state.pattern.timeline(for: ms(2000))
            #expect(timeline.map(\.at) == [ms(0), ms(500), ms(1000), ms(1500)])
            #expect(self.flashes(state, in: ms(10_000)) == 10)
        }
    }

    @Test("online is steady on, off is steady off: no changes ever")
    func steady() {
        #expect(LEDState.online.pattern.level(at: ms(123_456)).on == true)
        #expect(LEDState.online.pattern.timeline(for: ms(60_000)).count == 1)
        #expect(LEDState.online.pattern.level(at: ms(5)).nextChangeIn == nil)
        #expect(LEDState.off.pattern.level(at: ms(5)).on == false)
    }

    @Test("attention is a double flash repeating every 1.5 s")
    func attention() {
        let timeline = LEDState.attention.pattern.timeline(for: ms(3000))
        #expect(timeline.filter(\.on).map(\.at) == [ms(0), ms(300), ms(1500), ms(1800)])
    }

    @Test("release-now flickers fast (10 Hz), faster than any other pattern")
    func releaseNow() {
        let fast = self.flashes(.releaseNow, in: ms(1000))
        #expect(fast == 10)
        for state in LEDState.allCases where state != .releaseNow {
            #expect(self.flashes(state, in: ms(1000)) < fast)
        }
    }

    @Test("identify: three quick flashes, then a pause, and no other pattern looks like it")
    func identify() {
        let flashes = LEDState.identify.pattern.timeline(for: ms(2000)).filter(\.on).map(\.at)
        #expect(flashes == [ms(0), ms(250), ms(500)])
        let period = LEDState.identify.pattern.period
        #expect(period == ms(2000))
        let cycles = Set(LEDState.allCases.map(\.pattern.cycle))
        #expect(cycles.count == LEDState.allCases.count - 2)  // connecting, offline and buffering share theirs
    }

    @Test("level(at:) wraps around the period and says when the next change is")
    func levelAt() {
        let pattern = LEDState.provisioning.pattern
        #expect(pattern.level(at: ms(10_000 + 60)).on == true)
        #expect(pattern.level(at: ms(10_000 + 60)).nextChangeIn == ms(65))
        #expect(pattern.level(at: ms(10_000 + 130)).on == false)
        // Steps with the same level are one stretch: the double flash's dark gap is 1050 ms long.
        #expect(LEDState.attention.pattern.level(at: ms(450)).nextChangeIn == ms(1050))
    }

    @Test("the button's feedback overrides the agent's state while held")
    func overlay() {
        #expect(LEDState.online.overlaid(with: .none) == .online)
        #expect(LEDState.online.overlaid(with: .holding) == .buttonHeld)
        #expect(LEDState.provisioning.overlaid(with: .releaseNow) == .releaseNow)
    }

    @Test("sysfs trigger lists: the bracketed trigger is the active one")
    func triggers() {
        let list = LEDTriggerList(parsing: "none rc-feedback timer [mmc0] heartbeat\n")
        #expect(list.current == "mmc0")
        #expect(list.options == ["none", "rc-feedback", "timer", "mmc0", "heartbeat"])
        #expect(list.rendered(selecting: "none") == "[none] rc-feedback timer mmc0 heartbeat\n")
        #expect(LEDTriggerList(parsing: "heartbeat").current == "heartbeat")
        #expect(LEDTriggerList(parsing: "none timer").current == nil)
    }
}
