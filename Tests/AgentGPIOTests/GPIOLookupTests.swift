import AgentCore
import SystemPackage
import Testing

@testable import AgentGPIO

/// The lookup rules of AgentGPIO (the same for libgpiod v1 and v2), on chip descriptions made up here: no kernel.
@Suite("GPIO line lookup")
struct GPIOLookupTests {
    /// A Raspberry Pi 5 as Raspberry Pi OS shows it: the header's RP1 chip is gpiochip0 (it was gpiochip4, and the
    /// OS keeps /dev/gpiochip4 as a link to it), the SoC's chips come after.
    static let rp1Names = ["ID_SDA", "ID_SCL"] + (2...27).map { "GPIO\($0)" } + ["PCIE_RP1_WAKE", "FAN_TACH"]
    static let pi5 = GPIOChipScan(chips: [
        GPIOChipEntry(path: "/dev/gpiochip0", chip: GPIOChipDescription(name: "gpiochip0", label: "pinctrl-rp1", lineNames: rp1Names)),
        GPIOChipEntry(path: "/dev/gpiochip10", chip: GPIOChipDescription(name: "gpiochip10", label: "gpio-brcmstb@107d508500", lineNames: ["", "2712_BOOT_CS_N", "GPIO17_DUP"])),
        GPIOChipEntry(path: "/dev/gpiochip11", chip: GPIOChipDescription(name: "gpiochip11", label: "gpio-brcmstb@107d508520", lineNames: ["RP1_SDA", "RP1_SCL"])),
    ])
    /// What a link resolves to: /dev/gpiochip4 → /dev/gpiochip0; paths that do not exist → nil.
    static func canonical(_ path: String) -> String? {
        switch path {
        case "/dev/gpiochip4", "/dev/../dev/gpiochip0": return "/dev/gpiochip0"
        case _ where Self.pi5.chips.contains { $0.path == path }: return path
        case "/dev/null": return "/dev/null"
        default: return nil
        }
    }

    func locate(_ address: LineAddress, in scan: GPIOChipScan = Self.pi5) throws(GPIOError) -> GPIOLineLocation {
        try GPIOLookup.locate(address, in: scan, canonicalPath: Self.canonical)
    }

    func failure(_ address: LineAddress, in scan: GPIOChipScan = Self.pi5) -> GPIOError? {
        do {
            _ = try self.locate(address, in: scan)
            return nil
        } catch {
            return error
        }
    }

    @Test func aNameIsFoundOnWhicheverChipHasIt() throws {
        let door = try self.locate(.name("GPIO17"))
        #expect(door.chip.path == "/dev/gpiochip0")
        #expect(door.offset == 17)
        let sda = try self.locate(.name("RP1_SDA"))
        #expect(sda.chip.chip.label == "gpio-brcmstb@107d508520")
        #expect(sda.offset == 0)
    }

    @Test func aNameOnTwoChipsIsTheFirstChipsInDeviceOrder() throws {
        let names = ["GPIO5"]
        let scan = GPIOChipScan(chips: [
            GPIOChipEntry(path: "/dev/gpiochip2", chip: GPIOChipDescription(name: "gpiochip2", label: "b", lineNames: ["", "GPIO5"])),
            GPIOChipEntry(path: "/dev/gpiochip10", chip: GPIOChipDescription(name: "gpiochip10", label: "c", lineNames: names)),
        ])
        #expect(try self.locate(.name("GPIO5"), in: scan).chip.path == "/dev/gpiochip2")
        #expect(GPIOLookup.chipOrder(["gpiochip10", "gpiochip2", "gpiochip0", "gpiomem", "gpiochipX", "null"])
            == ["gpiochip0", "gpiochip2", "gpiochip10"])
    }

    @Test func aLabelWithAnOffsetFindsTheChipWhateverItsNumber() throws {
        let line = try self.locate(.chipOffset(chip: "pinctrl-rp1", offset: 27))
        #expect(line.chip.path == "/dev/gpiochip0")
        #expect(line.offset == 27)
        // The same board after a kernel update that numbers the RP1 chip 4 again: the label still finds it.
        var renumbered = Self.pi5
        renumbered.chips[0].path = "/dev/gpiochip4"
        renumbered.chips[0].chip.name = "gpiochip4"
        let again = try GPIOLookup.locate(.chipOffset(chip: "pinctrl-rp1", offset: 27), in: renumbered)
        #expect(again.chip.path == "/dev/gpiochip4")
        #expect(again.offset == 27)
    }

    @Test func aPathWithAnOffsetFollowsLinks() throws {
        #expect(try self.locate(.chipOffset(chip: "/dev/gpiochip0", offset: 4)).chip.chip.label == "pinctrl-rp1")
        // Raspberry Pi OS's compatibility link for the Pi 5's old chip number is the same chip.
        #expect(try self.locate(.chipOffset(chip: "/dev/gpiochip4", offset: 4)).chip.path == "/dev/gpiochip0")
        #expect(try self.locate(.chipOffset(chip: "/dev/../dev/gpiochip0", offset: 4)).chip.path == "/dev/gpiochip0")
        // The kernel's name for a chip is its path without /dev/.
        #expect(try self.locate(.chipOffset(chip: "gpiochip11", offset: 1)).chip.chip.label == "gpio-brcmstb@107d508520")
        #expect(try self.locate(.chipOffset(chip: "gpiochip4", offset: 1)).chip.path == "/dev/gpiochip0")
    }

    @Test func aChipNumberIsRefusedWithTheLabelsToUseInstead() {
        let error = self.failure(.chipOffset(chip: "4", offset: 17))
        #expect(error?.code == .chipNumber)
        #expect(error?.message.contains("chip numbers change between kernels") == true, "\(String(describing: error))")
        #expect(error?.message.contains("'pinctrl-rp1' on gpiochip0") == true, "\(String(describing: error))")
        #expect(self.failure(.chipOffset(chip: "0", offset: 17))?.code == .chipNumber)
    }

    @Test func anUnknownLineListsTheChipsAndTheirLines() {
        let error = self.failure(.name("GPIO99"))
        #expect(error?.code == .lineNotFound)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("GPIO line 'GPIO99' not found; chips: gpiochip0 [pinctrl-rp1] 30 lines: lines ID_SDA, ID_SCL, GPIO2,"), "\(message)")
        #expect(message.contains("gpiochip11 [gpio-brcmstb@107d508520] 2 lines: lines RP1_SDA, RP1_SCL"), "\(message)")
    }

    @Test func anUnknownChipListsTheChips() {
        let label = self.failure(.chipOffset(chip: "pinctrl-bcm2711", offset: 17))
        #expect(label?.code == .chipNotFound)
        #expect(label?.message.hasPrefix("GPIO chip 'pinctrl-bcm2711' not found; chips: gpiochip0 [pinctrl-rp1]") == true)
        let path = self.failure(.chipOffset(chip: "/dev/gpiochip7", offset: 1))
        #expect(path?.code == .chipNotFound)
        #expect(path?.message.hasPrefix("GPIO chip '/dev/gpiochip7' not found (no such file); chips:") == true)
        #expect(self.failure(.chipOffset(chip: "/dev/null", offset: 1))?.message.contains("(not a GPIO chip)") == true)
    }

    @Test func anOffsetPastTheLastLineSaysWhichExist() {
        let error = self.failure(.chipOffset(chip: "pinctrl-rp1", offset: 30))
        #expect(error?.code == .lineNotFound)
        #expect(error?.message == "GPIO chip 'pinctrl-rp1' (gpiochip0, label 'pinctrl-rp1') has lines 0…29; there is no line 30")
    }

    @Test func aLabelOnTwoChipsAsksForThePath() {
        let scan = GPIOChipScan(chips: [
            GPIOChipEntry(path: "/dev/gpiochip0", chip: GPIOChipDescription(name: "gpiochip0", label: "gpio-sim", lineNames: ["a"])),
            GPIOChipEntry(path: "/dev/gpiochip1", chip: GPIOChipDescription(name: "gpiochip1", label: "gpio-sim", lineNames: ["b"])),
        ])
        let error = self.failure(.chipOffset(chip: "gpio-sim", offset: 0), in: scan)
        #expect(error?.code == .ambiguousChip)
        #expect(error?.message.contains("/dev/gpiochip0 and /dev/gpiochip1") == true)
    }

    @Test func chipsThisUserMayNotOpenNameTheGPIOGroup() {
        let scan = GPIOChipScan(chips: [], denied: ["/dev/gpiochip0"], deniedErrno: .permissionDenied)
        for address in [LineAddress.name("GPIO17"), .chipOffset(chip: "pinctrl-rp1", offset: 17), .chipOffset(chip: "/dev/gpiochip0", offset: 17)] {
            let error = self.failure(address, in: scan)
            #expect(error?.code == .permissionDenied, "\(address)")
            #expect(error?.message.contains("`gpio` group") == true, "\(address)")
            #expect(error?.errno == .permissionDenied)
        }
        // A line found on a chip this user may open is found, whatever the other chips.
        var mixed = Self.pi5
        mixed.denied = ["/dev/gpiochip12"]
        #expect(throws: Never.self) { try GPIOLookup.locate(.name("GPIO17"), in: mixed) }
    }

    @Test func noChipsAtAllPointsToTheSimulatedBoard() {
        let error = self.failure(.name("GPIO17"), in: GPIOChipScan(chips: []))
        #expect(error?.message.contains("this machine has no GPIO chips (/dev/gpiochip*)") == true)
        #expect(error?.message.contains("backend = \"simulated\"") == true)
    }
}

/// Kernel stamps onto the agent's timeline.
@Suite("GPIO edge timestamps")
struct EdgeStampTests {
    let now = Duration.seconds(1000)

    @Test func kernelStampsAreKeptAsTheyAre() {
        let raw = [RawEdge(level: .high, timestamp: .seconds(999)), RawEdge(level: .low, timestamp: .milliseconds(999_500))]
        #expect(EdgeStamps.events(raw, kernelDebounce: nil, now: self.now) == [
            EdgeEvent(level: .high, timestamp: .seconds(999)), EdgeEvent(level: .low, timestamp: .milliseconds(999_500)),
        ])
    }

    @Test func aKernelDebouncedEdgeIsStampedWhenTheLineSettled() {
        // The kernel reports the edge once the level has held for the period, stamped then.
        let raw = [RawEdge(level: .low, timestamp: .milliseconds(999_800))]
        #expect(EdgeStamps.events(raw, kernelDebounce: .milliseconds(300), now: self.now) == [
            EdgeEvent(level: .low, timestamp: .milliseconds(999_500)),
        ])
    }

    @Test func wallClockStampsOfOldKernelsBecomeNow() {
        let raw = [RawEdge(level: .high, timestamp: .seconds(1_790_000_000))]
        #expect(EdgeStamps.events(raw, kernelDebounce: .milliseconds(50), now: self.now) == [
            EdgeEvent(level: .high, timestamp: self.now),
        ])
    }

    @Test func aKernelDebouncedBurstGivesTheSameChangeAsTheSoftwareDebouncerAlone() {
        // Seven flips 2 ms apart from t=10 s, ending low; a 300 ms window.
        let window = Duration.milliseconds(300)
        let flips = (0..<7).map { i in EdgeEvent(level: i % 2 == 0 ? .low : .high, timestamp: .seconds(10) + .milliseconds(2 * i)) }
        var software = Debouncer(initial: .high, at: .seconds(9), window: window)
        var alone: [EdgeEvent] = []
        for flip in flips { alone += software.edge(flip) }
        alone += software.tick(now: .seconds(11))
        // With the kernel debouncing too: one edge, reported 300 ms after the last flip, stamped then.
        let kernelEdge = RawEdge(level: .low, timestamp: flips.last!.timestamp + window)
        let events = EdgeStamps.events([kernelEdge], kernelDebounce: window, now: kernelEdge.timestamp + .milliseconds(1))
        var both = Debouncer(initial: .high, at: .seconds(9), window: window)
        var together: [EdgeEvent] = []
        for event in events { together += both.edge(event) }
        together += both.tick(now: kernelEdge.timestamp + .milliseconds(1))
        #expect(alone == [EdgeEvent(level: .low, timestamp: .seconds(10) + .milliseconds(12))])
        #expect(together == alone)
    }
}
