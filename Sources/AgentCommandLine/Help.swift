/// Help and usage texts, laid out as ArgumentParser lays them out (the same sections, columns and wrapping), so
/// that what people and scripts read stays the same. Pure: the screen width is a parameter.
public enum HelpFormatter {
    static let indent = 2
    static let labelColumn = 26

    /// The full help of the last command of `path`: overview, usage, arguments, options, subcommands.
    public static func help(for path: [CommandNode], version: String?, width: Int = 80) -> String {
        guard let command = path.last else { return "" }
        var abstract = command.configuration.abstract
        if !command.configuration.discussion.isEmpty {
            if !abstract.isEmpty { abstract += "\n" }
            abstract += "\n" + command.configuration.discussion
        }
        let overview = abstract.isEmpty ? "" : Self.wrap("OVERVIEW: " + abstract, to: width) + "\n\n"
        let usage = "USAGE: " + Self.usage(for: path) + "\n\n"

        var positionals: [(String, String)] = []
        var options: [(String, String)] = []
        for spec in command.arguments {
            let entry = (Self.label(spec), Self.describe(spec))
            if spec.isPositional { positionals.append(entry) } else { options.append(entry) }
        }
        if version != nil { options.append(("--version", "Show the version.")) }
        if command.listsHelpFlag { options.append(("-h, --help", "Show help information.")) }
        let subcommands = command.configuration.subcommands.filter(\.configuration.shouldDisplay)
            .map { ($0.name, $0.configuration.abstract) }

        let sections = [("ARGUMENTS", positionals), ("OPTIONS", options), ("SUBCOMMANDS", subcommands)]
            .filter { !$0.1.isEmpty }
            .map { title, elements in title + ":\n" + elements.map { Self.element($0.0, $0.1, width: width) }.joined() }
            .joined(separator: "\n")
        let seeHelp = subcommands.isEmpty
            ? ""
            : "\n  See '\(Self.names(path, inserting: "help")) <subcommand>' for detailed help."
        return overview + usage + sections + seeHelp
    }

    /// The usage line: `tb-agent gpio read [--config <config>] … <lines> ...`; past twelve entries, only the
    /// positional and required ones (`tb-agent gpio watch [<options>] <line>`).
    public static func usage(for path: [CommandNode]) -> String {
        guard let command = path.last else { return "" }
        let tool = path.map(\.name).joined(separator: " ")
        var entries = command.arguments.map { ($0, Self.synopses($0)) }
        var usage: String
        if entries.flatMap(\.1).isEmpty {
            usage = tool
        } else if entries.flatMap(\.1).count > 12 {
            entries = entries.filter { $0.0.isPositional || $0.0.isRequired }
            let kept = entries.flatMap(\.1)
            usage = kept.isEmpty || kept.count > 12 ? "\(tool) <options>" : "\(tool) [<options>] " + kept.joined(separator: " ")
        } else {
            usage = tool + " " + entries.flatMap(\.1).joined(separator: " ")
        }
        if !command.configuration.subcommands.isEmpty { usage += " <subcommand>" }
        return usage
    }

    /// The lines an error ends with: the usage and where to read more.
    public static func usageMessage(for path: [CommandNode]) -> String {
        let usage = "Usage: \(Self.usage(for: path))"
        guard path.last?.listsHelpFlag ?? true else { return usage }
        return usage + "\n  See '\(Self.names(path, inserting: nil)) --help' for more information."
    }

    /// `tb-agent gpio`, or with `help` after the root: `tb-agent help gpio`.
    static func names(_ path: [CommandNode], inserting word: String?) -> String {
        var names = path.map(\.name)
        if let word { names.insert(word, at: min(1, names.count)) }
        return names.joined(separator: " ")
    }

    /// The usage entries of one argument: an inversion has two (`[--tls] [--no-tls]`).
    static func synopses(_ spec: ArgumentSpec) -> [String] {
        switch spec.kind {
        case .option(let repeatable):
            let text = "--\(spec.name) <\(spec.name)>" + (repeatable ? " ..." : "")
            return [spec.isRequired ? text : "[\(text)]"]
        case .flag(let inversion):
            return inversion ? ["[--\(spec.name)]", "[--no-\(spec.name)]"] : ["[--\(spec.name)]"]
        case .positional(let arity):
            switch arity {
            case .required: return ["<\(spec.name)>"]
            case .optional: return ["[<\(spec.name)>]"]
            case .repeating(let atLeastOne): return [atLeastOne ? "<\(spec.name)> ..." : "[<\(spec.name)> ...]"]
            }
        }
    }

    /// The left column of help: `-c, --config <config>`, `--tls/--no-tls`, `<lines>`.
    static func label(_ spec: ArgumentSpec) -> String {
        let short = spec.shortName.map { "-\($0), " } ?? ""
        switch spec.kind {
        case .option: return "\(short)--\(spec.name) <\(spec.name)>"
        case .flag(let inversion): return short + (inversion ? "--\(spec.name)/--no-\(spec.name)" : "--\(spec.name)")
        case .positional: return "<\(spec.name)>"
        }
    }

    /// The right column: the help, then `(values: …; default: …)`.
    static func describe(_ spec: ArgumentSpec) -> String {
        let values = spec.allValues.isEmpty ? nil : "values: " + spec.allValues.joined(separator: ", ")
        let defaultValue = spec.defaultDescription.flatMap { $0.isEmpty ? nil : "default: " + $0 }
        let extra = [values, defaultValue].compactMap { $0 }.joined(separator: "; ")
        return [spec.help, extra.isEmpty ? "" : "(\(extra))"].filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// One entry: the label, and the text wrapped in the second column (on the next line when the label is too
    /// wide for the first).
    static func element(_ label: String, _ text: String, width: Int) -> String {
        let padded = String(repeating: " ", count: Self.indent) + label
        guard !text.isEmpty else { return padded + "\n" }
        let wrapped = Self.wrap(text, to: width, indent: Self.labelColumn)
        if padded.count < Self.labelColumn { return padded + wrapped.dropFirst(padded.count) + "\n" }
        return padded + "\n" + wrapped + "\n"
    }

    /// Wraps `text` at spaces to `width` columns, every line indented by `indent`; a word longer than a line is
    /// kept whole, and the text's own line breaks are kept.
    static func wrap(_ text: String, to width: Int, indent: Int = 0) -> String {
        let columns = max(1, width - indent)
        var lines: [Substring] = []
        var current = text.startIndex
        while true {
            let chunk = text[current...].prefix(columns)
            if let lineBreak = chunk.lastIndex(of: "\n") {
                lines += text[current..<lineBreak].split(separator: "\n", omittingEmptySubsequences: false)
                current = text.index(after: lineBreak)
            } else if chunk.endIndex == text.endIndex {
                lines.append(text[current...])
                break
            } else if let space = chunk.lastIndex(of: " ") {
                lines.append(text[current..<space])
                current = text.index(after: space)
            } else if let space = text[current...].firstIndex(of: " ") {
                lines.append(text[current..<space])
                current = text.index(after: space)
            } else {
                lines.append(text[current...])
                break
            }
        }
        let margin = String(repeating: " ", count: indent)
        return lines.map { $0.isEmpty ? "" : margin + $0 }.joined(separator: "\n")
    }
}
