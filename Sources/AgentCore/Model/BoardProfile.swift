/// A board profile from `board/<name>.toml`: which GPIO chip reaches the header, what each header pin carries, the
/// status LED and a suggested button pin (README, "Configuration", board profiles).
public struct BoardProfile: Sendable, Equatable {
    /// What one header pin carries.
    public enum PinFunction: Sendable, Equatable, CustomStringConvertible {
        /// A GPIO line of the profile's chip: its name (`GPIO17`) and offset on the chip (17).
        case line(name: String, offset: Int)
        case power3V3
        case power5V
        case ground

        public var description: String {
            switch self {
            case .line(let name, _): return name
            case .power3V3: return "3V3"
            case .power5V: return "5V"
            case .ground: return "GND"
            }
        }
    }

    public struct HeaderPin: Sendable, Equatable {
        /// The physical pin number (1…40 on a Raspberry Pi header).
        public var pin: Int
        public var function: PinFunction

        public init(pin: Int, function: PinFunction) {
            self.pin = pin
            self.function = function
        }
    }

    /// The file name without `.toml` (`raspberrypi-4b`), as `[device] board` names it.
    public var name: String
    /// `title`: what a person calls the board.
    public var title: String
    /// `models`: device-tree model strings (prefixes) of this board, as `tb-agent identity --explain` shows them.
    public var models: [String]
    /// `gpio_chip`: the label of the GPIO chip whose lines reach the header (`pinctrl-bcm2711`). Chip numbers move
    /// between kernels; labels do not.
    public var gpioChip: String
    /// `header`: physical pin → function, sorted by pin.
    public var header: [HeaderPin]
    /// `status_led`: the sysfs LED (`/sys/class/leds/<name>`) that shows the agent's state by default.
    public var statusLED: String?
    /// `button_line`: the line suggested for the re-provisioning button.
    public var buttonLine: String?

    public init(
        name: String, title: String, models: [String] = [], gpioChip: String, header: [HeaderPin],
        statusLED: String? = nil, buttonLine: String? = nil
    ) {
        self.name = name
        self.title = title
        self.models = models
        self.gpioChip = gpioChip
        self.header = header.sorted { $0.pin < $1.pin }
        self.statusLED = statusLED
        self.buttonLine = buttonLine
    }

    /// The header pin that carries the line named `name`, if any.
    public func pin(forLine name: String) -> Int? {
        self.header.first { pin in
            if case .line(let lineName, _) = pin.function { return lineName == name }
            return false
        }?.pin
    }

    /// The chip offset of the line named `name`, if it is on the header.
    public func offset(forLine name: String) -> Int? {
        for pin in self.header {
            if case .line(let lineName, let offset) = pin.function, lineName == name { return offset }
        }
        return nil
    }
}
