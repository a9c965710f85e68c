import AgentBoard
import AgentCore
import AgentGPIO
import AgentSimulated
import AgentTestSupport
import Foundation
import Synchronization
import Testing

/// A simulated board in a temporary folder: line files, and a copy of board/simulated/sysroot.
struct TemporaryBoard {
    let root: URL
    var gpio: URL { self.root.appendingPathComponent("gpio") }
    var sysroot: URL { self.root.appendingPathComponent("sysroot") }
    var state: URL { self.root.appendingPathComponent("state") }
    var backend: SimulatedGPIOBackend { SimulatedGPIOBackend(directory: self.gpio.path) }

    init() throws {
        self.root = try TestSupport.makeTemporaryDirectory("board")
        let source = TestSupport.packageRoot.appendingPathComponent("board/simulated")
        try FileManager.default.copyItem(at: source.appendingPathComponent("gpio"), to: self.gpio)
        try FileManager.default.copyItem(at: source.appendingPathComponent("sysroot"), to: self.sysroot)
    }

    /// Writes a line's file the way a person does (`echo 1 > GPIO17`: truncate, then write).
    func set(_ line: String, _ value: String) throws {
        let handle = try FileHandle(forWritingTo: self.gpio.appendingPathComponent(line))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("\(value)\n".utf8))
        try handle.close()
    }

    func read(_ relative: String, in base: URL? = nil) -> String {
        (try? String(contentsOf: (base ?? self.gpio).appendingPathComponent(relative), encoding: .utf8)) ?? "<missing>"
    }

    func remove() { try? FileManager.default.removeItem(at: self.root) }
}

/// Polls `condition` without blocking a thread of the cooperative pool (other tests' stream consumers need them).
@discardableResult
func eventually(timeout: Duration = .seconds(5), _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

/// Collects what a stream yields, for assertions from the test's thread.
final class Collected<Element: Sendable>: Sendable {
    let items = Mutex<[Element]>([])
    let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ stream: AsyncThrowingStream<Element, any Error>) {
        let task = Task { [self] in
            do {
                for try await item in stream { self.items.withLock { $0.append(item) } }
            } catch {}
        }
        self.task.withLock { $0 = task }
    }

    var all: [Element] { self.items.withLock { $0 } }
    func cancel() { self.task.withLock { $0 }?.cancel() }
}

@Suite("Simulated board, end to end: line files, watchers, the LED, the button, sensors")
struct SimulatedBoardTests {
    @Test("inputs read their file; active-low inverts; a missing file takes its level from the bias")
    func levels() throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        #expect(try board.backend.input(.name("GPIO17"), InputRequest()).read() == .high)
        #expect(try board.backend.input(.name("GPIO27"), InputRequest(activeLow: true)).read() == .low)
        #expect(try board.backend.input(.name("GPIO5"), InputRequest(bias: .pullDown)).read() == .low)
        #expect(board.read("GPIO5") == "0\n")
        #expect(throws: AgentError.self) { try board.backend.input(.name("GPIO6"), InputRequest()) }
        do {
            _ = try board.backend.input(.name("GPIO6"), InputRequest())
        } catch {
            #expect(error.message.contains("GPIO6"))
            #expect(error.message.contains("GPIO17"))  // lists the lines there
        }
        try board.set("GPIO17", "x")
        #expect(throws: AgentError.self) { try board.backend.input(.name("GPIO17"), InputRequest()).read() }
        #expect(SimulatedGPIOBackend.fileName(for: .chipOffset(chip: "/dev/gpiochip0", offset: 17)) == "gpiochip0-17")
    }

    @Test("a written file is a debounced change; a burst of writes inside the window is exactly one change")
    func watchedChanges() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let input = try board.backend.input(.name("GPIO17"), InputRequest(edges: true))
        let watcher = try LineWatcher(input: input) { level, time in
            WatchedLine(initial: level, at: time, debounce: .milliseconds(150), reportRawEdges: true)
        }
        let seen = Collected(watcher.outputs)
        defer {
            watcher.stop()
            seen.cancel()
        }
        #expect(watcher.machine.debouncer.level == .high)
        try board.set("GPIO17", "0")
        #expect(await eventually { watcher.machine.debouncer.level == .low })
        // A burst: five flips with no pause, ending high.
        for value in ["1", "0", "1", "0", "1"] { try board.set("GPIO17", value) }
        #expect(await eventually { watcher.machine.debouncer.level == .high })
        try await Task.sleep(for: .milliseconds(300))
        let changes = seen.all.compactMap { output -> EdgeEvent? in
            if case .change(let change) = output { return change } else { return nil }
        }
        let edges = seen.all.filter { if case .edge = $0 { return true } else { return false } }
        #expect(changes.map(\.level) == [.low, .high])
        #expect(edges.count >= 2)
    }

    @Test("stopping a watcher ends its stream and its thread")
    func stopEndsStream() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let input = try board.backend.input(.name("GPIO17"), InputRequest(edges: true))
        let watcher = try LineWatcher(input: input) { level, time in
            Debouncer(initial: level, at: time, window: .milliseconds(20))
        }
        let ended = Task {
            var count = 0
            for try await _ in watcher.outputs { count += 1 }
            return count
        }
        watcher.stop()
        #expect(try await ended.value == 0)
    }

    @Test("a GPIO LED follows the pattern in its file, and is off once stopped")
    func gpioLED() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let led = try GPIOLED(backend: board.backend, line: .name("GPIO22"), activeLow: false)
        let controller = try LEDController(output: led, initial: .provisioning)
        // The line sampled every 2 ms on a thread of its own: polled from the cooperative pool, a blink can fall
        // between two looks while other tests keep the pool's threads busy.
        let samples = Mutex<Set<String>>([])
        let sampling = Atomic<Bool>(true)
        let sampler = try JoinableThread {
            while sampling.load(ordering: .acquiring) {
                let value = board.read("GPIO22")
                samples.withLock { _ = $0.insert(value) }
                usleep(2000)
            }
        }
        let blinked = await eventually(timeout: .seconds(20)) { samples.withLock { $0.isSuperset(of: ["0\n", "1\n"]) } }
        sampling.store(false, ordering: .releasing)
        sampler.join()
        #expect(blinked, "the provisioning pattern should turn the line on and off: saw \(samples.withLock { $0 })")
        controller.show(.online)
        #expect(await eventually(timeout: .seconds(2)) { board.read("GPIO22") == "1\n" })
        #expect(controller.showing == .online)
        controller.stop()
        #expect(board.read("GPIO22") == "0\n")
        #expect(controller.lastError == nil)
    }

    @Test("a LED shows its first state as soon as its controller exists (tb-agent led reports it right after)")
    func ledShowsTheInitialStateAtOnce() throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let led = try GPIOLED(backend: board.backend, line: .name("GPIO22"), activeLow: false)
        let controller = try LEDController(output: led, initial: .online)
        #expect(board.read("GPIO22") == "1\n")
        controller.stop()
        #expect(board.read("GPIO22") == "0\n")
    }

    @Test("a sysfs LED: trigger none while running, brightness at max, the previous trigger restored after")
    func sysfsLED() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let files = DiskBoardFiles(root: board.sysroot.path)
        let leds = board.sysroot.appendingPathComponent("sys/class/leds/ACT")
        let before = board.read("trigger", in: leds)
        #expect(before.contains("[mmc0]"))
        let controller = try LEDController(output: try SysfsLED(files: files, name: "ACT"), initial: .online)
        #expect(await eventually(timeout: .seconds(2)) { board.read("brightness", in: leds) == "255\n" })
        #expect(board.read("trigger", in: leds).hasPrefix("[none] "))
        controller.stop()
        #expect(board.read("trigger", in: leds) == before)
        #expect(board.read("brightness", in: leds) == "0\n")
        do {
            _ = try SysfsLED(files: files, name: "PWR")
            Issue.record("opened a LED that does not exist")
        } catch {
            #expect(error.message.contains("LEDs on this board: ACT"))
        }
    }

    @Test("the button: a long press asks for re-provisioning, with 'release now' on the LED while held")
    func button() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let led = try LEDController(output: try GPIOLED(backend: board.backend, line: .name("GPIO22"), activeLow: false),
                                    initial: .online)
        defer { led.stop() }
        // A hold long enough that the "held" state cannot slip between two polls on a loaded machine.
        let settings = ButtonSettings(line: .name("GPIO27"), debounce: .milliseconds(20), reprovisionHold: .seconds(2))
        let monitor = try ButtonMonitor(backend: board.backend, settings: settings, led: led)
        defer { monitor.stop() }
        #expect(monitor.startEvents.isEmpty)
        let seen = Collected(monitor.outputs)
        defer { seen.cancel() }
        func events() -> [LongPressDetector.Event] {
            seen.all.compactMap { if case .button(let event) = $0 { return event } else { return nil } }
        }
        // What the LED shows, sampled every 2 ms on a thread of its own: the cooperative pool the test runs on can
        // be busy for seconds in a full parallel run (tests that wait for processes), longer than the "held" window.
        // The same thread lets go of the button as soon as "release now" shows, as a person does: released from
        // the pool instead, a press could outlast `stuckAfter` while other tests keep the pool's threads busy.
        let shown = Mutex<[LEDState]>([])
        let sampling = Atomic<Bool>(true)
        let released = Atomic<Bool>(false)
        try board.set("GPIO27", "0")  // pressed (to ground)
        let sampler = try JoinableThread {
            while sampling.load(ordering: .acquiring) {
                let state = led.showing
                shown.withLock { if $0.last != state { $0.append(state) } }
                if state == .releaseNow, !released.load(ordering: .acquiring) {
                    try? board.set("GPIO27", "1")
                    released.store(true, ordering: .releasing)
                }
                usleep(2000)
            }
        }
        defer {
            sampling.store(false, ordering: .releasing)
            sampler.join()
        }
        #expect(await eventually(timeout: .seconds(20)) { released.load(ordering: .acquiring) })
        #expect(Array(shown.withLock { $0 }.prefix(3)) == [.online, .buttonHeld, .releaseNow])
        #expect(await eventually {
            events().contains { if case .reprovisionRequested = $0 { return true } else { return false } }
        })
        #expect(led.showing == .online)
        let kinds = events().map { "\($0)".split(separator: ":").first.map(String.init) ?? "" }
        #expect(kinds.first == "pressed")
        #expect(kinds.contains("held"))
    }

    @Test("a button pressed when watching starts is ignored until released")
    func buttonPressedAtStart() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        try board.set("GPIO27", "0")
        let settings = ButtonSettings(line: .name("GPIO27"), debounce: .milliseconds(20), reprovisionHold: .milliseconds(200))
        let monitor = try ButtonMonitor(backend: board.backend, settings: settings)
        defer { monitor.stop() }
        #expect(monitor.startEvents.count == 1)
        try await Task.sleep(for: .milliseconds(500))
        #expect(monitor.watcher.machine.detector.feedback == .none)
        try board.set("GPIO27", "1")
        #expect(await eventually { monitor.watcher.machine.detector.isArmed })
    }

    @Test("a counter counts debounced pulses and its total survives a restart")
    func counter() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let environment = SensorEnvironment(
            files: DiskBoardFiles(root: board.sysroot.path), gpio: board.backend,
            counters: CounterStore(stateDirectory: board.state.path))
        let settings = SensorSettings(name: "rain", kind: .counter, line: .name("GPIO23"), debounce: .milliseconds(5))
        let first = BoardSensors.make([settings], environment: environment)[0]
        try first.start()
        for _ in 0..<3 {
            try board.set("GPIO23", "1")
            try await Task.sleep(for: .milliseconds(60))
            try board.set("GPIO23", "0")
            try await Task.sleep(for: .milliseconds(60))
        }
        let counter = try #require(first as? PulseCounterSensor)
        #expect(await eventually { counter.count == 3 })
        let report = first.read()
        guard case .counter(let count, let rate)? = report.value else {
            Issue.record("no counter value: \(report.summary)")
            return
        }
        #expect(count == 3)
        #expect(rate != nil)
        first.stop()
        let stored = board.state.appendingPathComponent("counters/rain.count")
        #expect((try? String(contentsOf: stored, encoding: .utf8)) == "3\n")
        // "Restart": a new sensor starts from the stored total.
        let second = BoardSensors.make([settings], environment: environment)[0]
        #expect(second.read().value == .counter(count: 3, ratePerSecond: nil))
    }

    @Test("every sensor of the simulated board reads, with full precision")
    func allSensors() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let environment = SensorEnvironment(
            files: DiskBoardFiles(root: board.sysroot.path), gpio: board.backend,
            counters: CounterStore(stateDirectory: board.state.path))
        let sensors = BoardSensors.make([
            SensorSettings(name: "door", kind: .gpio, line: .name("GPIO17")),
            SensorSettings(name: "door_n", kind: .gpio, line: .name("GPIO17"), activeLow: true, reportAsNumber: true),
            SensorSettings(name: "t", kind: .ds18b20),
            SensorSettings(name: "cpu", kind: .thermal),
            SensorSettings(name: "h", kind: .iio, device: "dht11", channel: "in_humidityrelative_input", scale: 0.001),
            SensorSettings(name: "missing", kind: .iio, device: "bme280", channel: "in_temp_input"),
        ], environment: environment)
        let reports = BoardSensors.readAll(sensors)
        #expect(reports.map(\.value) == [.bool(true), .integer(0), .number(23.125), .number(48.312), .number(48), nil])
        #expect(reports.map(\.status) == [.ok, .ok, .ok, .ok, .ok, .failing])
        #expect(reports[5].summary.contains("no IIO device named 'bme280'"))
        // A CRC failure on the next read: failing, but the last good value stays while fresh.
        let slave = board.sysroot.appendingPathComponent("sys/bus/w1/devices/28-00000a1b2c3d/w1_slave")
        try "72 01 4b 46 7f ff 0e 10 57 : crc=a0 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
            .write(to: slave, atomically: true, encoding: .utf8)
        let again = sensors[2].read()
        #expect(again.status == .stale)
        #expect(again.value == .number(23.125))
        #expect(again.health.consecutiveFailures == 1)
        #expect(again.summary.contains("CRC"))
    }
}

/// A sysroot whose reads fail on demand (EIO from a DHT sensor).
final class FlakyFiles: BoardFiles {
    let base: DiskBoardFiles
    let failures: Mutex<[BoardFileError.Kind]>
    let reads = Atomic<Int>(0)

    init(root: String, failures: [BoardFileError.Kind]) {
        self.base = DiskBoardFiles(root: root)
        self.failures = Mutex(failures)
    }

    func readText(_ path: String) throws(BoardFileError) -> String {
        if path.hasSuffix("_input") {
            self.reads.add(1, ordering: .relaxed)
            let failure = self.failures.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            if let failure { throw BoardFileError(failure, path: self.displayPath(path), reason: "Input/output error") }
        }
        return try self.base.readText(path)
    }

    func list(_ directory: String) throws(BoardFileError) -> [String] { try self.base.list(directory) }
    func writeText(_ text: String, to path: String) throws(BoardFileError) { try self.base.writeText(text, to: path) }
    func displayPath(_ path: String) -> String { self.base.displayPath(path) }
}

@Suite("IIO sensor retries: EIO from a DHT is retried, and the last good value stands in while fresh")
struct IIORetryTests {
    let settings = SensorSettings(name: "air", kind: .iio, device: "dht11", channel: "in_temp_input", scale: 0.001)

    func environment(_ files: FlakyFiles, board: TemporaryBoard) -> SensorEnvironment {
        SensorEnvironment(files: files, gpio: board.backend, counters: CounterStore(stateDirectory: board.state.path),
                          sleep: { _ in })
    }

    final class ClockBox: Sendable {
        let value: Mutex<Duration>
        init(_ value: Duration) { self.value = Mutex(value) }
    }

    @Test("two EIOs then a reading: one read, three attempts, healthy")
    func retriedToSuccess() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let files = FlakyFiles(root: board.sysroot.path, failures: [.transient, .transient])
        let sensor = BoardSensors.make([self.settings], environment: self.environment(files, board: board))[0]
        let report = sensor.read()
        #expect(report.value == .number(22))
        #expect(report.status == .ok)
        #expect(files.reads.load(ordering: .relaxed) == 3)
    }

    @Test("EIO on every attempt: failing, with the attempts and the error; the last good value is kept while fresh")
    func retriesExhausted() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let clock = ClockBox(.seconds(100))
        let files = FlakyFiles(root: board.sysroot.path, failures: [])
        let environment = SensorEnvironment(
            files: files, gpio: board.backend, counters: CounterStore(stateDirectory: board.state.path),
            telemetryInterval: .seconds(10), sleep: { _ in }, now: { clock.value.withLock { $0 } })
        let sensor = BoardSensors.make([self.settings], environment: environment)[0]
        #expect(sensor.read().value == .number(22))
        files.failures.withLock { $0 = Array(repeating: .transient, count: 6) }
        clock.value.withLock { $0 = .seconds(110) }
        let stale = sensor.read()
        #expect(stale.status == .stale)
        #expect(stale.value == .number(22))
        #expect(stale.summary.contains("3 attempts"))
        #expect(stale.summary.contains("Input/output error"))
        #expect(stale.summary.contains("last good 22.0 10s ago"))
        clock.value.withLock { $0 = .seconds(200) }  // past the 30 s freshness window
        let failing = sensor.read()
        #expect(failing.status == .failing)
        #expect(failing.value == nil)
        #expect(failing.health.consecutiveFailures == 2)
    }

    @Test("a missing file is not retried")
    func notFoundNotRetried() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let files = FlakyFiles(root: board.sysroot.path, failures: [])
        var settings = self.settings
        settings.channel = "in_pressure_input"
        let sensor = BoardSensors.make([settings], environment: self.environment(files, board: board))[0]
        let report = sensor.read()
        #expect(report.status == .failing)
        #expect(files.reads.load(ordering: .relaxed) == 1)
    }
}
