/// A mistake found while placing a key in the tree (a redefinition), before the reader adds its key path.
struct BuildError: Error {
    var position: TOMLPosition
    var path: [TOMLPathComponent]
    var message: String
}

/// The tables of a document while it is read, and TOML's rules about defining them.
///
/// Tables live in an arena (`nodes`) so that headers can reach back into any of them; finished values (scalars,
/// arrays, inline tables) are leaves that can never be changed. The rules, as TOML 1.0 and toml-test state them:
/// - a key is defined once;
/// - a table is defined once, by a header (`[a]`) or by dotted keys (`a.b = 1`), never both; a header may define a
///   table that an earlier header only created on its way (`[a.b]` then `[a]`);
/// - dotted keys can add to tables they created in the same table section, and to tables a header only created on
///   the way, never to a table a header defined, nor to an array of tables;
/// - an inline table or an array value is complete: nothing can be added to it;
/// - `[[a]]` appends to an array of tables, never to an array value.
struct TableBuilder {
    enum Origin: Equatable {
        /// Created on the way to a header's table (`a` of `[a.b]`).
        case implicit
        /// Defined by a header.
        case header
        /// Created by dotted keys in this scope (a table section, or one inline table).
        case dotted(scope: Int)
    }

    enum Content {
        case leaf(TOMLValue)
        case table(Int)
        /// An index into `arrays`.
        case tableArray(Int)
    }

    struct Entry {
        var key: String
        var keyPosition: TOMLPosition
        var content: Content
    }

    struct Node {
        var entries: [Entry] = []
        var index: [ExactKey: Int] = [:]
        var origin: Origin
        var position: TOMLPosition
        var depth: Int
    }

    var nodes: [Node] = [Node(origin: .header, position: TOMLPosition(line: 1, column: 1), depth: 0)]
    /// The tables of each array of tables, in order.
    var arrays: [[Int]] = []
    /// The table the current section adds to (the root, until the first header).
    var section = 0
    var sectionPath: [TOMLPathComponent] = []
    var sectionDepth: Int { self.nodes[self.section].depth }
    /// The scope of the current section, for dotted keys.
    var scope = 0
    var nextScope = 1

    mutating func newScope() -> Int {
        defer { self.nextScope += 1 }
        return self.nextScope
    }

    func entry(_ key: String, in node: Int) -> Entry? {
        guard let i = self.nodes[node].index[ExactKey(key)] else { return nil }
        return self.nodes[node].entries[i]
    }

    mutating func add(_ key: String, at position: TOMLPosition, _ content: Content, to node: Int) {
        self.nodes[node].index[ExactKey(key)] = self.nodes[node].entries.count
        self.nodes[node].entries.append(Entry(key: key, keyPosition: position, content: content))
    }

    mutating func newNode(_ origin: Origin, at position: TOMLPosition, depth: Int) -> Int {
        self.nodes.append(Node(origin: origin, position: position, depth: depth))
        return self.nodes.count - 1
    }

    func checkDepth(_ depth: Int, _ maxDepth: Int, _ position: TOMLPosition, _ path: [TOMLPathComponent]) throws(BuildError) {
        if depth > maxDepth {
            throw BuildError(position: position, path: path, message: "arrays and tables nest deeper than \(maxDepth) levels")
        }
    }

    /// "an integer (defined at 3:7)", "an inline table (defined at 2:5)".
    func describe(_ entry: Entry) -> String {
        switch entry.content {
        case .leaf(let value):
            let name: String
            switch value.kind {
            case .table: name = "an inline table"
            case .array: name = "an array"
            default: name = TOMLParser.withArticle(value.typeName)
            }
            return "\(name) (defined at \(value.position))"
        case .table(let id): return "a table (defined at \(self.nodes[id].position))"
        case .tableArray(let a):
            let first = self.arrays[a].first.map { self.nodes[$0].position } ?? entry.keyPosition
            return "an array of tables (defined at \(first))"
        }
    }

    // MARK: headers

    /// `[keys]` or `[[keys]]`: the table that following key/value pairs go into.
    mutating func openSection(
        _ keys: [(key: String, position: TOMLPosition)], isArray: Bool, maxDepth: Int
    ) throws(BuildError) {
        var node = 0
        var path: [TOMLPathComponent] = []
        let name = TOMLPathComponent.render(keys.map { .key($0.key) })
        for (offset, (key, position)) in keys.enumerated() {
            let last = offset == keys.count - 1
            path.append(.key(key))
            let depth = self.nodes[node].depth + 1
            guard let existing = self.entry(key, in: node) else {
                if last && isArray {
                    try self.checkDepth(depth + 1, maxDepth, position, path)
                    let element = self.newNode(.header, at: position, depth: depth + 1)
                    self.arrays.append([element])
                    self.add(key, at: position, .tableArray(self.arrays.count - 1), to: node)
                    path.append(.index(0))
                    node = element
                } else {
                    try self.checkDepth(depth, maxDepth, position, path)
                    let table = self.newNode(last ? .header : .implicit, at: position, depth: depth)
                    self.add(key, at: position, .table(table), to: node)
                    node = table
                }
                continue
            }
            switch existing.content {
            case .leaf:
                let what = TOMLPathComponent.render(path)
                throw BuildError(
                    position: position, path: path,
                    message: "\(isArray ? "[[" : "[")\(name)\(isArray ? "]]" : "]") cannot be opened: \(what) is "
                        + "\(self.describe(existing)), and \(self.isInline(existing) ? "inline tables" : "values") "
                        + "cannot be extended")
            case .table(let table):
                if last && isArray {
                    throw BuildError(
                        position: position, path: path,
                        message: "[[\(name)]] cannot be an array of tables: \(name) is already \(self.describe(existing))")
                }
                if last {
                    switch self.nodes[table].origin {
                    case .header:
                        throw BuildError(
                            position: position, path: path,
                            message: "the table [\(name)] is defined twice (first at \(self.nodes[table].position))")
                    case .dotted:
                        throw BuildError(
                            position: position, path: path,
                            message: "the table [\(name)] was already defined with dotted keys at "
                                + "\(self.nodes[table].position)")
                    case .implicit:
                        self.nodes[table].origin = .header
                    }
                }
                node = table
            case .tableArray(let array):
                if last && !isArray {
                    throw BuildError(
                        position: position, path: path,
                        message: "[\(name)] cannot be opened: \(name) is \(self.describe(existing)); write "
                            + "[[\(name)]] to add a table to it")
                }
                if last {
                    try self.checkDepth(depth + 1, maxDepth, position, path)
                    let element = self.newNode(.header, at: position, depth: depth + 1)
                    self.arrays[array].append(element)
                    path.append(.index(self.arrays[array].count - 1))
                    node = element
                } else {
                    // The most recent table of the array.
                    guard let element = self.arrays[array].last else { return }
                    path.append(.index(self.arrays[array].count - 1))
                    node = element
                }
            }
        }
        self.section = node
        self.sectionPath = path
        self.scope = self.newScope()
    }

    func isInline(_ entry: Entry) -> Bool {
        if case .leaf(let value) = entry.content, case .table = value.kind { return true }
        return false
    }

    // MARK: key/value pairs

    /// `keys = value` in table `node`, where `path` leads to `node` and `scope` is the section's (or the inline
    /// table's).
    mutating func insert(
        _ keys: [(key: String, position: TOMLPosition)], _ value: TOMLValue, in start: Int, scope: Int,
        path base: [TOMLPathComponent], maxDepth: Int
    ) throws(BuildError) {
        var node = start
        var path = base
        for (offset, (key, position)) in keys.enumerated() {
            path.append(.key(key))
            let name = TOMLPathComponent.render(path)
            guard let existing = self.entry(key, in: node) else {
                if offset == keys.count - 1 {
                    self.add(key, at: position, .leaf(value), to: node)
                    return
                }
                let depth = self.nodes[node].depth + 1
                try self.checkDepth(depth, maxDepth, position, path)
                let table = self.newNode(.dotted(scope: scope), at: position, depth: depth)
                self.add(key, at: position, .table(table), to: node)
                node = table
                continue
            }
            if offset == keys.count - 1 {
                throw BuildError(
                    position: position, path: path,
                    message: "\(name) is defined twice: it is already \(self.describe(existing))")
            }
            switch existing.content {
            case .leaf:
                throw BuildError(
                    position: position, path: path,
                    message: "\(name) is \(self.describe(existing)), not a table: "
                        + (self.isInline(existing) ? "an inline table cannot be extended" : "keys cannot be added to it"))
            case .tableArray:
                throw BuildError(
                    position: position, path: path,
                    message: "\(name) is \(self.describe(existing)); dotted keys cannot add to it")
            case .table(let table):
                switch self.nodes[table].origin {
                case .header:
                    throw BuildError(
                        position: position, path: path,
                        message: "the table [\(name)] is defined by its header at \(self.nodes[table].position); "
                            + "dotted keys cannot add to it (write the keys under its header)")
                case .dotted(let s) where s != scope:
                    throw BuildError(
                        position: position, path: path,
                        message: "the table \(name) was defined with dotted keys at \(self.nodes[table].position), in "
                            + "another table; it cannot be added to here")
                case .dotted:
                    break
                case .implicit:
                    self.nodes[table].origin = .dotted(scope: scope)
                }
                node = table
            }
        }
    }

    // MARK: inline tables

    /// A table for an inline table, and its scope for dotted keys.
    mutating func newInlineTable(at position: TOMLPosition, depth: Int) -> (node: Int, scope: Int) {
        let scope = self.newScope()
        return (self.newNode(.dotted(scope: scope), at: position, depth: depth), scope)
    }

    // MARK: the result

    /// The table of `node`, with its tables built below it.
    func table(_ node: Int) -> TOMLTable {
        var entries: [TOMLTable.Entry] = []
        entries.reserveCapacity(self.nodes[node].entries.count)
        for entry in self.nodes[node].entries {
            let value: TOMLValue
            switch entry.content {
            case .leaf(let leaf):
                value = leaf
            case .table(let id):
                value = TOMLValue(.table(self.table(id)), at: self.nodes[id].position)
            case .tableArray(let a):
                let items = self.arrays[a].map { TOMLValue(.table(self.table($0)), at: self.nodes[$0].position) }
                value = TOMLValue(.array(items), at: items.first?.position ?? entry.keyPosition)
            }
            entries.append(TOMLTable.Entry(key: entry.key, keyPosition: entry.keyPosition, value: value))
        }
        return TOMLTable(entries)
    }

    func finish() -> TOMLTable { self.table(0) }
}
