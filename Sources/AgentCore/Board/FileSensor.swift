/// Reads one file-backed sensor (`ds18b20`, `iio`, `thermal`) once, through the `BoardFiles` port: finds the
/// device, reads its file, parses it and applies `precision`. No retries here (see `ReadRetryPolicy`).
public struct FileSensor: Sendable {
    public let settings: SensorSettings

    public static let w1Devices = "sys/bus/w1/devices"
    public static let iioDevices = "sys/bus/iio/devices"
    public static let thermalZones = "sys/class/thermal"

    public init(_ settings: SensorSettings) { self.settings = settings }

    /// One attempt.
    public func read(_ files: any BoardFiles) throws(SensorFailure) -> Double {
        let value: Double
        switch self.settings.kind {
        // For thermometers, `scale` and `offset` calibrate the value in °C; for IIO they convert the raw value.
        case .ds18b20: value = SensorParsers.calibrate(try self.readDS18B20(files), scale: self.settings.scale, offset: self.settings.offset)
        case .iio: value = try self.readIIO(files)
        case .thermal: value = SensorParsers.calibrate(try self.readThermal(files), scale: self.settings.scale, offset: self.settings.offset)
        case .gpio, .counter:
            throw SensorFailure(.hardware, "sensor '\(self.settings.name)': a \(self.settings.kind.rawValue) sensor is read from a GPIO line, not a file")
        }
        return SensorParsers.round(value, precision: self.settings.precision)
    }

    // MARK: ds18b20

    /// The 1-Wire thermometer's folder: `device` if set, else the first `28-*` found.
    public func ds18b20Directory(_ files: any BoardFiles) throws(SensorFailure) -> String {
        let entries: [String]
        do {
            entries = try files.list(Self.w1Devices)
        } catch {
            throw SensorFailure(.notFound, "\(files.displayPath(Self.w1Devices)) does not exist: the 1-Wire bus is not enabled; on a Raspberry Pi add `dtoverlay=w1-gpio` to config.txt (data on GPIO4, 4.7 kΩ pull-up to 3.3 V) and reboot")
        }
        if let device = self.settings.device {
            guard entries.contains(device) else {
                let found = entries.filter { Self.isThermometer($0) }
                throw SensorFailure(.notFound, "DS18B20 '\(device)' is not on the 1-Wire bus (\(files.displayPath(Self.w1Devices))); found: \(found.isEmpty ? "none" : found.joined(separator: ", ")); check the wiring or the `device` id")
            }
            return "\(Self.w1Devices)/\(device)"
        }
        guard let first = entries.first(where: { $0.hasPrefix("28-") }) else {
            throw SensorFailure(.notFound, "no DS18B20 (28-*) under \(files.displayPath(Self.w1Devices)): check the wiring (data, 3.3 V, ground) and the 4.7 kΩ pull-up between data and 3.3 V")
        }
        return "\(Self.w1Devices)/\(first)"
    }

    private static func isThermometer(_ name: String) -> Bool {
        ["10-", "22-", "28-", "3b-", "42-"].contains { name.hasPrefix($0) }
    }

    private func readDS18B20(_ files: any BoardFiles) throws(SensorFailure) -> Double {
        let directory = try self.ds18b20Directory(files)
        let slave = "\(directory)/w1_slave"
        var slaveText: String? = nil
        do {
            slaveText = try files.readText(slave)
        } catch {
            // Newer kernels may offer only `temperature`.
            guard error.kind == .notFound else { throw error.sensorFailure }
        }
        if let slaveText {
            return try SensorParsers.ds18b20W1Slave(slaveText, file: files.displayPath(slave))
        }
        let temperature = "\(directory)/temperature"
        let text: String
        do {
            text = try files.readText(temperature)
        } catch {
            throw error.kind == .notFound
                ? SensorFailure(.notFound, "\(files.displayPath(directory)) has neither w1_slave nor temperature: is it a thermometer?")
                : error.sensorFailure
        }
        return try SensorParsers.ds18b20Temperature(text, file: files.displayPath(temperature))
    }

    // MARK: iio

    /// The IIO device's folder: the `iio:deviceN` whose `name` is `device` (or `device` itself when it is an
    /// `iio:deviceN`).
    public func iioDirectory(_ files: any BoardFiles) throws(SensorFailure) -> String {
        guard let wanted = self.settings.device else {
            throw SensorFailure(.malformed, "sensor '\(self.settings.name)': an iio sensor needs `device` (the IIO device's name, e.g. \"dht11\")")
        }
        let entries: [String]
        do {
            entries = try files.list(Self.iioDevices)
        } catch {
            throw SensorFailure(.notFound, "\(files.displayPath(Self.iioDevices)) does not exist: no IIO driver is loaded; for a DHT11/DHT22 on a Raspberry Pi add `dtoverlay=dht11,gpiopin=4` to config.txt and reboot")
        }
        var names: [String] = []
        for entry in entries where entry.hasPrefix("iio:device") {
            if entry == wanted { return "\(Self.iioDevices)/\(entry)" }
            let name = (try? files.readText("\(Self.iioDevices)/\(entry)/name")).map { String(BoardText.trim($0)) }
            if let name {
                if name == wanted { return "\(Self.iioDevices)/\(entry)" }
                names.append("\(entry) (\(name))")
            }
        }
        throw SensorFailure(.notFound, "no IIO device named '\(wanted)' under \(files.displayPath(Self.iioDevices)); found: \(names.isEmpty ? "none" : names.joined(separator: ", "))")
    }

    private func readIIO(_ files: any BoardFiles) throws(SensorFailure) -> Double {
        let directory = try self.iioDirectory(files)
        guard let channel = self.settings.channel, !channel.isEmpty else {
            throw SensorFailure(.malformed, "sensor '\(self.settings.name)': an iio sensor needs `channel` (a file in \(files.displayPath(directory)), e.g. \"in_temp_input\")")
        }
        let path = "\(directory)/\(channel)"
        let text: String
        do {
            text = try files.readText(path)
        } catch {
            if error.kind == .notFound {
                let channels = ((try? files.list(directory)) ?? []).filter { $0.hasPrefix("in_") || $0.hasPrefix("out_") }
                throw SensorFailure(.notFound, "\(files.displayPath(path)) does not exist; channels there: \(channels.isEmpty ? "none" : channels.joined(separator: ", "))")
            }
            throw error.sensorFailure
        }
        return try SensorParsers.iio(text, scale: self.settings.scale, offset: self.settings.offset, file: files.displayPath(path))
    }

    // MARK: thermal

    /// The zone's folder: `zone` (default `thermal_zone0`), or the zone whose `type` is `zone`.
    public func thermalDirectory(_ files: any BoardFiles) throws(SensorFailure) -> String {
        let zone = self.settings.zone ?? "thermal_zone0"
        let entries: [String]
        do {
            entries = try files.list(Self.thermalZones)
        } catch {
            throw SensorFailure(.notFound, "\(files.displayPath(Self.thermalZones)) does not exist: this kernel has no thermal zones")
        }
        if entries.contains(zone) { return "\(Self.thermalZones)/\(zone)" }
        var found: [String] = []
        for entry in entries where entry.hasPrefix("thermal_zone") {
            let type = (try? files.readText("\(Self.thermalZones)/\(entry)/type")).map { String(BoardText.trim($0)) }
            if type == zone { return "\(Self.thermalZones)/\(entry)" }
            found.append(type.map { "\(entry) (\($0))" } ?? entry)
        }
        throw SensorFailure(.notFound, "no thermal zone '\(zone)' under \(files.displayPath(Self.thermalZones)); found: \(found.isEmpty ? "none" : found.joined(separator: ", "))")
    }

    private func readThermal(_ files: any BoardFiles) throws(SensorFailure) -> Double {
        let path = "\(try self.thermalDirectory(files))/temp"
        let text: String
        do {
            text = try files.readText(path)
        } catch {
            throw error.sensorFailure
        }
        return try SensorParsers.thermal(text, file: files.displayPath(path))
    }
}

/// When to try a failed read again: transient failures (EIO, ETIMEDOUT from a DHT sensor) a few times, with a
/// pause; anything else at once gives up. A failed read still reports the last good value while it is fresh.
public struct ReadRetryPolicy: Sendable, Equatable {
    public var attempts: Int
    public var pause: Duration
    /// How long a last good value may stand in for failed reads.
    public var freshness: Duration

    public init(attempts: Int = 3, pause: Duration = .milliseconds(500), freshness: Duration = .seconds(60)) {
        self.attempts = max(attempts, 1)
        self.pause = pause
        self.freshness = freshness
    }

    /// Whether attempt number `attempt` (1-based) that failed with `failure` should be followed by another.
    public func shouldRetry(after failure: SensorFailure, attempt: Int) -> Bool {
        failure.kind == .transient && attempt < self.attempts
    }

    /// The policy for a sensor: IIO devices (DHT) retry; the freshness window is three reporting intervals, at
    /// least 30 s.
    public static func `for`(_ settings: SensorSettings, interval: Duration) -> ReadRetryPolicy {
        let freshness = max((settings.interval ?? interval) * 3, .seconds(30))
        switch settings.kind {
        case .iio: return ReadRetryPolicy(attempts: 3, pause: .milliseconds(500), freshness: freshness)
        default: return ReadRetryPolicy(attempts: 1, pause: .zero, freshness: freshness)
        }
    }
}
