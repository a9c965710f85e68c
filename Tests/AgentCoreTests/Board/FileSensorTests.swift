import AgentCore
import Synchronization
import Testing

/// A system root in memory: files, directories, and errors to return for some paths (EIO from a DHT).
final class MemoryBoardFiles: BoardFiles {
    let files: Mutex<[String: String]>
    /// Per path, the errors to throw on the next reads, in order.
    let failures: Mutex<[String: [BoardFileError.Kind]]>
    let reads = Mutex<[String]>([])

    init(_ files: [String: String], failures: [String: [BoardFileError.Kind]] = [:]) {
        self.files = Mutex(files)
        self.failures = Mutex(failures)
    }

    func readText(_ path: String) throws(BoardFileError) -> String {
        self.reads.withLock { $0.append(path) }
        let failure = self.failures.withLock { failures -> BoardFileError.Kind? in
            guard var queue = failures[path], !queue.isEmpty else { return nil }
            let next = queue.removeFirst()
            failures[path] = queue
            return next
        }
        if let failure {
            let reason = failure == .transient ? "Input/output error" : "Permission denied"
            throw BoardFileError(failure, path: self.displayPath(path), reason: reason)
        }
        guard let text = self.files.withLock({ $0[path] }) else {
            throw BoardFileError(.notFound, path: self.displayPath(path), reason: "No such file or directory")
        }
        return text
    }

    func list(_ directory: String) throws(BoardFileError) -> [String] {
        let prefix = directory + "/"
        let names = self.files.withLock { files in
            Set(files.keys.filter { $0.hasPrefix(prefix) }.compactMap { $0.dropFirst(prefix.count).split(separator: "/").first.map(String.init) })
        }
        guard !names.isEmpty else {
            throw BoardFileError(.notFound, path: self.displayPath(directory), reason: "No such file or directory")
        }
        return names.sorted()
    }

    func writeText(_ text: String, to path: String) throws(BoardFileError) {
        self.files.withLock { $0[path] = text }
    }

    func displayPath(_ path: String) -> String { "/sysroot/\(path)" }
}

@Suite("File sensors through the BoardFiles port")
struct FileSensorTests {
    static let w1 = "sys/bus/w1/devices"
    static let board = MemoryBoardFiles([
        "\(w1)/w1_bus_master1/w1_master_slaves": "28-00000a1b2c3d\n",
        "\(w1)/28-00000a1b2c3d/w1_slave": SensorParserTests.goodW1Slave,
        "\(w1)/28-0000075b3c2a/temperature": "19500\n",
        "sys/bus/iio/devices/iio:device0/name": "mcp3008\n",
        "sys/bus/iio/devices/iio:device0/in_voltage0_raw": "512\n",
        "sys/bus/iio/devices/iio:device1/name": "dht11\n",
        "sys/bus/iio/devices/iio:device1/in_temp_input": "22100\n",
        "sys/bus/iio/devices/iio:device1/in_humidityrelative_input": "48500\n",
        "sys/class/thermal/thermal_zone0/temp": "48312\n",
        "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
        "sys/class/thermal/thermal_zone1/temp": "30000\n",
        "sys/class/thermal/thermal_zone1/type": "gpu-thermal\n",
    ])

    @Test("ds18b20: the first 28-* by default, or the one named; w1_slave, else temperature")
    func ds18b20() throws {
        #expect(try FileSensor(SensorSettings(name: "t", kind: .ds18b20)).read(Self.board) == 19.5)  // 28-0000075b3c2a sorts first
        #expect(try FileSensor(SensorSettings(name: "t", kind: .ds18b20, device: "28-00000a1b2c3d")).read(Self.board) == 23.125)
        #expect(try FileSensor(SensorSettings(name: "t", kind: .ds18b20, precision: 1, device: "28-00000a1b2c3d")).read(Self.board) == 23.1)
    }

    @Test("ds18b20: missing bus, missing device and missing files say what to do")
    func ds18b20Missing() {
        let empty = MemoryBoardFiles([:])
        do {
            _ = try FileSensor(SensorSettings(name: "t", kind: .ds18b20)).read(empty)
            Issue.record("read without a bus")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.message.contains("dtoverlay=w1-gpio"))
        }
        do {
            _ = try FileSensor(SensorSettings(name: "t", kind: .ds18b20, device: "28-ffffffffffff")).read(Self.board)
            Issue.record("read a missing device")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.message.contains("28-00000a1b2c3d"))  // lists what is there
        }
        let noThermometer = MemoryBoardFiles(["\(Self.w1)/w1_bus_master1/w1_master_slaves": "not found.\n"])
        do {
            _ = try FileSensor(SensorSettings(name: "t", kind: .ds18b20)).read(noThermometer)
            Issue.record("read with no thermometer")
        } catch {
            #expect(error.message.contains("4.7 kΩ"))
        }
    }

    @Test("iio: the device found by its name; (raw + offset) × scale")
    func iio() throws {
        let humidity = SensorSettings(name: "h", kind: .iio, device: "dht11", channel: "in_humidityrelative_input", scale: 0.001)
        #expect(try FileSensor(humidity).read(Self.board) == 48.5)
        let adc = SensorSettings(name: "v", kind: .iio, device: "mcp3008", channel: "in_voltage0_raw", scale: 3.2226, offset: 0)
        #expect(try FileSensor(adc).read(Self.board) == 1649.9712)
        let byNumber = SensorSettings(name: "t", kind: .iio, device: "iio:device1", channel: "in_temp_input", scale: 0.001)
        #expect(try FileSensor(byNumber).read(Self.board) == 22.1)
    }

    @Test("iio: an unknown device lists the devices; an unknown channel lists the channels")
    func iioMissing() {
        do {
            _ = try FileSensor(SensorSettings(name: "t", kind: .iio, device: "bme280", channel: "in_temp_input")).read(Self.board)
            Issue.record("read an unknown device")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.message.contains("iio:device1 (dht11)"))
        }
        do {
            _ = try FileSensor(SensorSettings(name: "t", kind: .iio, device: "dht11", channel: "in_pressure_input")).read(Self.board)
            Issue.record("read an unknown channel")
        } catch {
            #expect(error.message.contains("in_humidityrelative_input"))
        }
    }

    @Test("iio: EIO from a DHT is a transient failure, which the retry policy retries")
    func iioTransient() {
        let files = MemoryBoardFiles(["sys/bus/iio/devices/iio:device0/name": "dht11\n",
                                      "sys/bus/iio/devices/iio:device0/in_temp_input": "21000\n"],
                                     failures: ["sys/bus/iio/devices/iio:device0/in_temp_input": [.transient]])
        let settings = SensorSettings(name: "t", kind: .iio, device: "dht11", channel: "in_temp_input", scale: 0.001)
        let policy = ReadRetryPolicy.for(settings, interval: .seconds(10))
        do {
            _ = try FileSensor(settings).read(files)
            Issue.record("the first read should fail")
        } catch {
            #expect(error.kind == .transient)
            #expect(policy.shouldRetry(after: error, attempt: 1))
            #expect(!policy.shouldRetry(after: error, attempt: policy.attempts))
        }
        #expect((try? FileSensor(settings).read(files)) == 21)
        // Not found is never retried.
        #expect(!policy.shouldRetry(after: SensorFailure(.notFound, "x"), attempt: 1))
        #expect(policy.freshness == .seconds(30))
    }

    @Test("thermal: the zone by folder or by type")
    func thermal() throws {
        #expect(try FileSensor(SensorSettings(name: "c", kind: .thermal)).read(Self.board) == 48.312)
        #expect(try FileSensor(SensorSettings(name: "c", kind: .thermal, zone: "gpu-thermal")).read(Self.board) == 30)
        do {
            _ = try FileSensor(SensorSettings(name: "c", kind: .thermal, zone: "thermal_zone7")).read(Self.board)
            Issue.record("read a missing zone")
        } catch {
            #expect(error.message.contains("thermal_zone1 (gpu-thermal)"))
        }
    }

    @Test("permission denied is reported as such")
    func permission() {
        let files = MemoryBoardFiles(["sys/class/thermal/thermal_zone0/temp": "1000\n"],
                                     failures: ["sys/class/thermal/thermal_zone0/temp": [.permissionDenied]])
        do {
            _ = try FileSensor(SensorSettings(name: "c", kind: .thermal)).read(files)
            Issue.record("read a file it may not read")
        } catch {
            #expect(error.kind == .permissionDenied)
        }
    }
}
