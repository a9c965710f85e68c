import AgentCore
import AgentHost
import TBTOML

/// Board profiles: `board/<name>.toml` files (README, "Configuration", board profiles).
///
/// ```toml
/// title = "Raspberry Pi 4 Model B"
/// models = ["Raspberry Pi 4 Model B"]   # device-tree model prefixes
/// gpio_chip = "pinctrl-bcm2711"         # the label of the chip whose lines reach the header
/// status_led = "ACT"                    # /sys/class/leds/ACT
/// button_line = "GPIO27"                # suggested button line (header pin 13)
///
/// [header]                              # physical pin = "GPIOn" | "3V3" | "5V" | "GND"
/// 1 = "3V3"
/// 3 = "GPIO2"
/// ```
public enum BoardProfiles {
    public enum Lookup: Sendable {
        case found(BoardProfile)
        case invalid([ConfigurationProblem])
        case notFound(known: [String])
    }

    /// The first `<name>.toml` on `searchPath`, parsed.
    public static func find(_ name: String, searchPath: [String]) -> Lookup {
        // A name is a file name, never a path: `../x` must not escape the search folders.
        let valid = !name.isEmpty && !name.hasPrefix(".") && !name.contains("/")
        if valid {
            for dir in searchPath {
                let file = (dir.hasSuffix("/") ? dir : dir + "/") + name + ".toml"
                guard HostProcess.exists(file) else { continue }
                do {
                    return .found(try self.load(path: file))
                } catch {
                    return .invalid(error.problems)
                }
            }
        }
        return .notFound(known: self.known(searchPath: searchPath))
    }

    /// The names of every profile on `searchPath`, sorted.
    public static func known(searchPath: [String]) -> [String] {
        var names = Set<String>()
        for dir in searchPath {
            guard case .success(let entries) = POSIXFile.list(dir) else { continue }
            for entry in entries where entry.hasSuffix(".toml") { names.insert(String(entry.dropLast(5))) }
        }
        return names.sorted()
    }

    /// Reads and checks one profile; its name is the file name without `.toml`.
    public static func load(path: String) throws(ConfigurationFileError) -> BoardProfile {
        switch FileText.read(path) {
        case .failure(let reason):
            throw ConfigurationFileError(problems: [
                ConfigurationProblem(
                    file: path, line: nil, column: nil, keyPath: "", message: "cannot read the board profile (\(reason))")
            ])
        case .success(let text):
            let file = path.split(separator: "/").last.map(String.init) ?? path
            let name = file.hasSuffix(".toml") ? String(file.dropLast(5)) : file
            return try self.parse(text, path: path, name: name)
        }
    }

    static let keys = ["title", "models", "gpio_chip", "status_led", "button_line", "header"]

    public static func parse(_ text: String, path: String, name: String) throws(ConfigurationFileError) -> BoardProfile {
        let problems = ProblemCollector(file: path)
        do {
            problems.root = try TOMLParser.parse(text, maxBytes: ConfigurationLoader.maxBytes)
        } catch {
            problems.reportSyntaxError(error)
            throw ConfigurationFileError(problems: problems.problems)
        }
        guard case .table(let top) = TOMLNode.from(problems.root) else { throw ConfigurationFileError(problems: []) }
        let r = TableReader(path: KeyPath(), table: top, problems: problems)
        r.rejectUnknownKeys(self.keys, section: "a board profile")
        let title = r.requiredString("title", expected: "the board's name, like \"Raspberry Pi 4 Model B\"")
        let chip = r.requiredString("gpio_chip", expected: "the GPIO chip label, like \"pinctrl-bcm2711\"")
        var models: [String] = []
        if let node = top["models"] {
            if case .array(let items) = node {
                for (index, item) in items.enumerated() {
                    if case .string(let model) = item {
                        models.append(model)
                    } else {
                        problems.report(r.keyPath("models").appending(index: index), "expected a string, found \(item.found)")
                    }
                }
            } else {
                r.report("models", "expected an array of device-tree model strings, found \(node.found)")
            }
        }
        let led = r.nonEmptyString("status_led", expected: "a sysfs LED name like \"ACT\"")
        let button = r.nonEmptyString("button_line", expected: "a line name like \"GPIO27\"")
        var header: [BoardProfile.HeaderPin] = []
        if let h = r.table("header", expected: "a table [header] of pin = \"GPIOn\" | \"3V3\" | \"5V\" | \"GND\"") {
            for key in h.table.keys.sorted() {
                guard let pin = Int(key), pin >= 1 else {
                    h.report(key, "\"\(key)\" is not a physical pin number (1, 2, …)")
                    continue
                }
                guard let value = h.string(key, expected: "\"GPIOn\", \"3V3\", \"5V\" or \"GND\"") else { continue }
                switch value {
                case "3V3": header.append(.init(pin: pin, function: .power3V3))
                case "5V": header.append(.init(pin: pin, function: .power5V))
                case "GND": header.append(.init(pin: pin, function: .ground))
                default:
                    guard value.hasPrefix("GPIO"), let offset = Int(value.dropFirst(4)), offset >= 0 else {
                        h.report(key, "\"\(value)\" is not valid; expected \"GPIOn\" (line n of gpio_chip), \"3V3\", \"5V\" or \"GND\"")
                        continue
                    }
                    header.append(.init(pin: pin, function: .line(name: value, offset: offset)))
                }
            }
        } else if !r.has("header") {
            r.report("header", "missing table [header] mapping physical pins to \"GPIOn\", \"3V3\", \"5V\" or \"GND\"")
        }
        let profile = BoardProfile(
            name: name, title: title ?? name, models: models, gpioChip: chip ?? "", header: header, statusLED: led,
            buttonLine: button)
        if let button, profile.pin(forLine: button) == nil, r.has("header") {
            r.report("button_line", "\"\(button)\" is not on the header; expected one of the header's GPIO lines")
        }
        guard problems.problems.isEmpty else { throw ConfigurationFileError(problems: problems.problems) }
        return profile
    }
}
