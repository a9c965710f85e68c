import ArgumentParser

struct Identity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the device name derived from the hardware.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "List every source tried, what it found, and why it was used or skipped.")
    var explain = false

    func run() async throws {
        throw ValidationError("identity derivation is being written (issue 2)")
    }
}
