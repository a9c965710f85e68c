import AgentCore
import Testing

@Suite("Sensor file parsers, with the kernel's real formats")
struct SensorParserTests {
    // Captured from a DS18B20 on a Raspberry Pi (w1_therm): 0x0172 = 370 sixteenths = 23.125 °C.
    static let goodW1Slave = """
        72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
        72 01 4b 46 7f ff 0e 10 57 t=23125

        """

    @Test("w1_slave: a good read keeps full precision")
    func w1SlaveGood() throws {
        #expect(try SensorParsers.ds18b20W1Slave(Self.goodW1Slave) == 23.125)
        let negative = "5e ff 4b 46 7f ff 02 10 4d : crc=4d YES\n5e ff 4b 46 7f ff 02 10 4d t=-10125\n"
        #expect(try SensorParsers.ds18b20W1Slave(negative) == -10.125)
    }

    @Test("w1_slave: a CRC failure (NO) is a failed read, not a reading")
    func w1SlaveCRC() {
        let text = "72 01 4b 46 7f ff 0e 10 57 : crc=a3 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
        #expect {
            try SensorParsers.ds18b20W1Slave(text, file: "/sys/bus/w1/devices/28-1/w1_slave")
        } throws: { error in
            guard let failure = error as? SensorFailure else { return false }
            return failure.kind == .invalidReading && failure.message.contains("CRC")
                && failure.message.contains("/sys/bus/w1/devices/28-1/w1_slave") && failure.message.contains("pull-up")
        }
    }

    @Test("w1_slave: the power-on value 85000 is a failed read")
    func w1SlavePowerOn() {
        let text = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
        #expect(throws: SensorFailure.self) { try SensorParsers.ds18b20W1Slave(text) }
        do {
            _ = try SensorParsers.ds18b20W1Slave(text)
        } catch {
            #expect(error.kind == .invalidReading)
            #expect(error.message.contains("85000"))
        }
    }

    @Test("w1_slave: an all-zero scratchpad (shorted bus) is a failed read even though its CRC matches")
    func w1SlaveZeros() {
        let text = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"
        do {
            _ = try SensorParsers.ds18b20W1Slave(text)
            Issue.record("an all-zero scratchpad was accepted")
        } catch {
            #expect(error.kind == .invalidReading)
        }
    }

    @Test("w1_slave: truncated or garbled files are malformed", arguments: [
        "", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n", "garbage\nmore garbage\n",
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=\n",
    ])
    func w1SlaveMalformed(text: String) {
        do {
            _ = try SensorParsers.ds18b20W1Slave(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.kind == .malformed)
        }
    }

    @Test("temperature file: millidegrees; 85000 and garbage fail")
    func temperatureFile() throws {
        #expect(try SensorParsers.ds18b20Temperature("23125\n") == 23.125)
        #expect(try SensorParsers.ds18b20Temperature("-55000\n") == -55)
        #expect(throws: SensorFailure.self) { try SensorParsers.ds18b20Temperature("85000\n") }
        #expect(throws: SensorFailure.self) { try SensorParsers.ds18b20Temperature("\n") }
    }

    @Test("thermal zone: millidegrees to °C, exactly")
    func thermal() throws {
        #expect(try SensorParsers.thermal("48312\n") == 48.312)
        #expect(try SensorParsers.thermal("23187") == 23.187)
        #expect(try SensorParsers.thermal("-4000\n") == -4)
        #expect(throws: SensorFailure.self) { try SensorParsers.thermal("hot\n") }
    }

    @Test("IIO: value = (raw + offset) × scale, in decimal (no 0.1 + 0.2 noise)")
    func iio() throws {
        #expect(try SensorParsers.iio("22100\n", scale: 0.001) == 22.1)
        #expect(try SensorParsers.iio("48500\n", scale: 0.001) == 48.5)
        // An ADC: raw 1234, scale 0.805664062 mV per count.
        #expect(try SensorParsers.iio("1234\n", scale: 0.805664062) == 994.189452508)
        // A temperature channel with an offset: (raw + offset) × scale.
        #expect(try SensorParsers.iio("1000", scale: 0.5, offset: -200) == 400)
        #expect(try SensorParsers.iio("3.25", scale: 2, offset: 0.1) == 6.7)
        #expect(try SensorParsers.iio("1e3", scale: 1e-05) == 0.01)
        #expect(throws: SensorFailure.self) { try SensorParsers.iio("", scale: 1) }
        #expect(throws: SensorFailure.self) { try SensorParsers.iio("12abc", scale: 1) }
    }

    @Test("precision rounds only when set")
    func precision() {
        #expect(SensorParsers.round(23.125, precision: nil) == 23.125)
        #expect(SensorParsers.round(23.125, precision: 1) == 23.1)
        #expect(SensorParsers.round(23.187, precision: 2) == 23.19)
        #expect(SensorParsers.round(23.5, precision: 0) == 24)
    }

    @Test("calibration of a thermometer: (°C + offset) × scale; identity by default")
    func calibration() {
        #expect(SensorParsers.calibrate(23.125, scale: 1, offset: 0) == 23.125)
        #expect(SensorParsers.calibrate(23.125, scale: 1, offset: -0.4) == 22.725)
    }
}

@Suite("Sensor health")
struct SensorHealthTests {
    @Test("consecutive failures, last good value and its age, last error")
    func record() {
        var health = SensorHealth()
        #expect(health.status(now: .zero, freshness: .seconds(30)) == .unknown)
        health.recordSuccess(.number(21.5), at: .seconds(10))
        #expect(health.status(now: .seconds(10), freshness: .seconds(30)) == .ok)
        health.recordFailure(SensorFailure(.transient, "in_temp_input: Input/output error"), at: .seconds(20))
        health.recordFailure(SensorFailure(.transient, "in_temp_input: Connection timed out"), at: .seconds(30))
        #expect(health.consecutiveFailures == 2)
        #expect(health.totalFailures == 2)
        #expect(health.age(now: .seconds(30)) == .seconds(20))
        #expect(health.freshValue(now: .seconds(30), within: .seconds(30)) == .number(21.5))
        #expect(health.status(now: .seconds(30), freshness: .seconds(30)) == .stale)
        #expect(health.status(now: .seconds(41), freshness: .seconds(30)) == .failing)
        #expect(health.freshValue(now: .seconds(41), within: .seconds(30)) == nil)
        let summary = health.summary(now: .seconds(30), freshness: .seconds(30))
        #expect(summary == "stale (2 consecutive failures; last good 21.5 20s ago; last error: in_temp_input: Connection timed out)")
        health.recordSuccess(.number(22), at: .seconds(50))
        #expect(health.consecutiveFailures == 0)
        #expect(health.lastError != nil)  // kept for the record
        #expect(health.summary(now: .seconds(50), freshness: .seconds(30)) == "ok")
    }

    @Test("counter arithmetic: total, delta and rate per second; the state file round-trips")
    func counter() {
        var tally = CounterTally(count: 100)
        #expect(tally.sample(at: .seconds(0)).ratePerSecond == nil)
        tally.pulse(25)
        let sample = tally.sample(at: .seconds(10))
        #expect(sample.count == 125)
        #expect(sample.delta == 25)
        #expect(sample.ratePerSecond == 2.5)
        #expect(CounterTally.decode(CounterTally.encode(18_446_744_073_709_551_615)) == UInt64.max)
        #expect(CounterTally.decode("12\n") == 12)
        #expect(CounterTally.decode("-3") == nil)
        #expect(CounterTally.decode("") == nil)
    }

    @Test("values print as people and telemetry expect them")
    func values() {
        #expect(SensorValue.level(.high, asNumber: false).description == "true")
        #expect(SensorValue.level(.low, asNumber: true).description == "0")
        #expect(SensorValue.number(23.125).description == "23.125")
        #expect(SensorValue.counter(count: 7, ratePerSecond: nil).description == "count=7")
        #expect(SensorValue.counter(count: 7, ratePerSecond: 0.5).description == "count=7 rate=0.5/s")
    }
}
