import AgentCore
import SystemPackage

// How a configured line becomes (chip, offset), the same for libgpiod v1 and v2: this file calls no libgpiod
// function, so the rules are written once and tested without a kernel (Tests/AgentGPIOTests).

/// A chip as the lookup sees it: its character device and what it holds.
public struct GPIOChipEntry: Sendable, Equatable {
    /// `/dev/gpiochip0`
    public var path: String
    /// Name (`gpiochip0`), label (`pinctrl-rp1`) and line names by offset.
    public var chip: GPIOChipDescription

    public init(path: String, chip: GPIOChipDescription) {
        self.path = path
        self.chip = chip
    }
}

/// Every chip the machine has, in the kernel's order (`gpiochip0`, `gpiochip1`, … `gpiochip10`), and the ones that
/// could not be opened for lack of permission.
public struct GPIOChipScan: Sendable, Equatable {
    public var chips: [GPIOChipEntry]
    /// Paths of chips this user may not open: their labels and lines are unknown.
    public var denied: [String]
    /// The errno of the first refusal, kept for the error.
    public var deniedErrno: Errno?

    public init(chips: [GPIOChipEntry], denied: [String] = [], deniedErrno: Errno? = nil) {
        self.chips = chips
        self.denied = denied
        self.deniedErrno = deniedErrno
    }
}

/// Where a line is: its chip and its offset on that chip.
public struct GPIOLineLocation: Sendable, Equatable {
    public var chip: GPIOChipEntry
    public var offset: Int

    public init(chip: GPIOChipEntry, offset: Int) {
        self.chip = chip
        self.offset = offset
    }
}

/// The lookup rules: a line by name across every chip, or by chip (label, path, or the kernel's name for it)
/// and offset. Never by chip number: numbers move between kernels (the Raspberry Pi 5's RP1 chip was
/// `gpiochip4`, then `gpiochip0`), so a bare number is refused with the label to use instead.
public enum GPIOLookup {
    /// Finds `address` among `scan.chips`.
    ///
    /// - Parameters:
    ///   - canonicalPath: resolves a path given as the chip (symbolic links, `..`) to the device it names, or nil
    ///     when it does not exist; `/dev/gpiochip4` is a link to `/dev/gpiochip0` on a Raspberry Pi 5.
    /// - Throws: `.lineNotFound`, `.chipNotFound`, `.chipNumber`, `.ambiguousChip` or `.permissionDenied`, each
    ///   with a message that lists what exists.
    public static func locate(
        _ address: LineAddress, in scan: GPIOChipScan, canonicalPath: (String) -> String? = { $0 }
    ) throws(GPIOError) -> GPIOLineLocation {
        switch address {
        case .name(let name):
            for entry in scan.chips {
                if let offset = entry.chip.lineNames.firstIndex(of: name) {
                    return GPIOLineLocation(chip: entry, offset: offset)
                }
            }
            if !scan.denied.isEmpty {
                throw GPIOError(.permissionDenied, "permission denied opening the GPIO chips (\(scan.denied.joined(separator: ", "))) to find line '\(name)': \(Self.permissionFix)", errno: scan.deniedErrno)
            }
            throw GPIOError(.lineNotFound, "GPIO line '\(name)' not found; \(Self.listing(scan.chips.map(\.chip)))")
        case .chipOffset(let identifier, let offset):
            let entry = try self.chip(identifier, in: scan, canonicalPath: canonicalPath)
            let count = entry.chip.lineNames.count
            guard offset >= 0, offset < count else {
                throw GPIOError(.lineNotFound, "GPIO chip '\(identifier)' (\(entry.chip.name), label '\(entry.chip.label)') has lines 0…\(count - 1); there is no line \(offset)")
            }
            return GPIOLineLocation(chip: entry, offset: offset)
        }
    }

    /// The chip `identifier` names: a path (`/dev/gpiochip0`, or a link to it), the kernel's name for it
    /// (`gpiochip0`), or its label (`pinctrl-rp1`).
    static func chip(
        _ identifier: String, in scan: GPIOChipScan, canonicalPath: (String) -> String?
    ) throws(GPIOError) -> GPIOChipEntry {
        if !identifier.isEmpty, identifier.allSatisfy(\.isASCIIDigit) {
            throw GPIOError(.chipNumber, "GPIO chip '\(identifier)' is a chip number, and chip numbers change between kernels (the Raspberry Pi 5's header chip was gpiochip4, then gpiochip0): give the chip's label instead\(Self.labelHint(scan.chips))")
        }
        if identifier.hasPrefix("/") {
            let path = canonicalPath(identifier)
            if let path, let entry = scan.chips.first(where: { canonicalPath($0.path) == path }) { return entry }
            if let path, scan.denied.contains(where: { canonicalPath($0) == path }) {
                throw GPIOError(.permissionDenied, "permission denied opening GPIO chip '\(identifier)': \(Self.permissionFix)", errno: scan.deniedErrno)
            }
            let why = path == nil ? "no such file" : "not a GPIO chip"
            throw GPIOError(.chipNotFound, "GPIO chip '\(identifier)' not found (\(why)); \(Self.listing(scan.chips.map(\.chip)))")
        }
        if let entry = scan.chips.first(where: { $0.chip.name == identifier }) { return entry }
        // `gpiochip4` with no such chip: /dev/gpiochip4 may be a link to the chip (Raspberry Pi OS keeps one for
        // the Pi 5's old number).
        if identifier.hasPrefix("gpiochip"), let path = canonicalPath("/dev/" + identifier),
           let entry = scan.chips.first(where: { canonicalPath($0.path) == path })
        {
            return entry
        }
        let labelled = scan.chips.filter { $0.chip.label == identifier }
        if labelled.count > 1 {
            let where_ = labelled.map(\.path).joined(separator: " and ")
            throw GPIOError(.ambiguousChip, "GPIO chip label '\(identifier)' is on \(where_): give the chip's path instead")
        }
        if let entry = labelled.first { return entry }
        if !scan.denied.isEmpty {
            throw GPIOError(.permissionDenied, "permission denied opening the GPIO chips (\(scan.denied.joined(separator: ", "))) to find chip '\(identifier)': \(Self.permissionFix)", errno: scan.deniedErrno)
        }
        throw GPIOError(.chipNotFound, "GPIO chip '\(identifier)' not found; \(Self.listing(scan.chips.map(\.chip)))")
    }

    static let permissionFix =
        "add the agent's user to the `gpio` group (`sudo usermod -aG gpio USER`, then log in again) or run it as root"

    /// ` (labels here: pinctrl-rp1 on gpiochip0, …)`, or nothing when there are no chips.
    static func labelHint(_ chips: [GPIOChipEntry]) -> String {
        let labelled = chips.filter { !$0.chip.label.isEmpty }
        guard !labelled.isEmpty else { return "" }
        return " (labels here: " + labelled.map { "'\($0.chip.label)' on \($0.chip.name)" }.joined(separator: ", ") + ")"
    }

    /// "chips: gpiochip0 [pinctrl-bcm2711] 58 lines: lines GPIO0, GPIO1, …" or what to do when there are none.
    public static func listing(_ chips: [GPIOChipDescription]) -> String {
        guard !chips.isEmpty else {
            return "this machine has no GPIO chips (/dev/gpiochip*); to run without hardware set `[gpio] backend = \"simulated\"`"
        }
        let parts = chips.map { chip -> String in
            let named = chip.lineNames.filter { !$0.isEmpty }
            let shown = named.prefix(64).joined(separator: ", ")
            let more = named.count > 64 ? ", …" : ""
            let names = named.isEmpty ? "no named lines (address them by chip and offset 0…\(chip.lineNames.count - 1))" : "lines \(shown)\(more)"
            return "\(chip.name) [\(chip.label)] \(chip.lineNames.count) lines: \(names)"
        }
        return "chips: " + parts.joined(separator: "; ")
    }

    /// The chip device names in `/dev` order: `gpiochip2` before `gpiochip10`. Names that are not
    /// `gpiochip<number>` are left out.
    public static func chipOrder(_ names: [String]) -> [String] {
        let numbered = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("gpiochip"), let n = Int(name.dropFirst(8)), n >= 0 else { return nil }
            return (n, name)
        }
        return numbered.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { self >= "0" && self <= "9" }
}
