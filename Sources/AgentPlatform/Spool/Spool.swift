import AgentCore
import SystemPackage
import TBJSON

#if canImport(Glibc)
import Glibc
#endif

/// The offline spool: a bounded, append-only log of readings on flash, replayed oldest first after a reconnect or
/// a restart and trimmed as the server acknowledges them.
///
/// Layout in `<state_dir>/spool/`: segment files `<first sequence, 20 digits>.seg` holding `SpoolRecord`s, and
/// `state.json` with the acknowledged watermark and the count of dropped records (written atomically, at most
/// once a second and at shutdown). A torn tail after a power cut is detected by the records' checksums, logged
/// and cut off; nothing before it is lost. When the spool would exceed its size, the oldest segment is dropped
/// and its unacknowledged records are counted as dropped.
///
/// When flash cannot take a record (the file system is full or read-only, the directory cannot be created), the
/// record is kept in memory instead (up to `memoryLimit` bytes, the oldest dropped and counted past it) and sent
/// from there: the agent keeps publishing, `problem` says what is wrong, and the next write that works clears
/// it. Records kept in memory are lost if the agent stops before they are acknowledged.
///
/// The directory is opened once (`O_DIRECTORY | O_NOFOLLOW`) and every file in it is reached relative to it, never
/// through a symbolic link; new segments are created exclusively and the state's temporary file afresh, so a link
/// planted in the directory cannot make the agent truncate or write another file. A directory that cannot be used
/// (a file in its place, another user's or writable by others, unreadable) does not stop the agent: the spool runs
/// from memory and `problem` says why, with the fix (`init(directoryOrMemory:settings:)`).
///
/// Not thread-safe: one task owns it.
public final class Spool {
    public struct Status: Sendable, Equatable {
        /// Records written and not yet acknowledged.
        public var depth: Int
        public var bytes: Int
        /// Records dropped because the spool was full, since it was created.
        public var dropped: UInt64
        /// Damage found and cut off when the spool was opened (bytes).
        public var recoveredDamage: Int
        /// Records kept in memory because flash could not take them (part of `depth`).
        public var inMemory: Int = 0
    }

    struct Segment {
        var firstSequence: UInt64
        var lastSequence: UInt64  // firstSequence - 1 when empty
        var name: String
        var path: FilePath
        var bytes: Int
        var count: Int { Int(self.lastSequence &- self.firstSequence &+ 1) }
    }

    public let directory: FilePath
    public let settings: SpoolSettings
    /// The spool directory, open while it is usable; nil while the spool runs from memory because it is not.
    private var handle: StateFileDirectory? = nil
    /// The directory could not be used when the spool was opened: when it can be later, it is used only if it
    /// holds no readings of an earlier run (their sequence numbers would collide with those handed out meanwhile).
    private var startedInMemory = false
    /// What the directory held could not be read: the spool stays in memory until the agent restarts, rather than
    /// write beside readings it cannot account for.
    private var unreadableContent: AgentError? = nil
    private var segments: [Segment] = []
    private var active: FileDescriptor? = nil
    private var nextSequence: UInt64 = 1
    /// Every sequence ≤ this is acknowledged.
    public private(set) var acknowledgedThrough: UInt64 = 0
    /// The sequence of the newest record appended (0 before any).
    public var lastSequence: UInt64 { self.nextSequence &- 1 }
    /// Acknowledged sequences above the watermark (PUBACKs can arrive out of order).
    private var acknowledgedAbove: Set<UInt64> = []
    /// Sequences above the watermark that no segment holds (found when the spool was opened), oldest first: the
    /// watermark steps over them.
    private var holes: [ClosedRange<UInt64>] = []
    private var dropped: UInt64 = 0
    private var recoveredDamage = 0
    /// What opening the spool found and cut off, one sentence per damaged segment (for the log).
    public private(set) var recoveryNotes: [String] = []
    /// Why flash does not take the spool's writes (records are then kept in memory); nil while it does.
    public var problem: AgentError? { self.appendProblem ?? self.syncProblem }
    /// The last append or sync failure, each cleared by the next one that works.
    private var appendProblem: AgentError? = nil
    private var syncProblem: AgentError? = nil
    /// Records flash could not take, oldest first, and their total payload bytes.
    private var memory: [SpoolRecord] = []
    private var memoryBytes = 0
    /// At most this many payload bytes are kept in memory (1 MiB, or `max_size` if smaller).
    public var memoryLimit: Int { min(self.settings.maxBytes, 1 << 20) }
    private var unsyncedSince: ContinuousClock.Instant? = nil { didSet { self.updateSyncDue() } }
    private var stateDirtySince: ContinuousClock.Instant? = nil { didSet { self.updateSyncDue() } }
    /// When `syncIfDue()` syncs: the sync interval after the older of the two (checked on every append and
    /// acknowledgement, so it is kept ready rather than worked out each time).
    private var syncDue: ContinuousClock.Instant? = nil
    private let clock = ContinuousClock()

    /// Opens (creating when needed) the spool in `directory`, recovering from a crash; never fails. When the
    /// directory cannot be used (a file in its place, another user's or writable by others, unreadable, on a
    /// read-only or full file system) or what it holds cannot be read, the spool runs from memory: `problem` says
    /// why and the fix, and `recoveryNotes` holds the same sentence for the log. Later writes try the directory
    /// again (except when its content could not be read: then until the agent restarts).
    public init(directoryOrMemory directory: String, settings: SpoolSettings = .init()) {
        self.directory = FilePath(directory)
        self.settings = settings
        do {
            self.handle = try self.openDirectory()
        } catch {
            // Run from memory rather than not at all.
            self.startedInMemory = true
            self.appendProblem = error
            self.recoveryNotes.append("\(error.message); readings are kept in memory (up to \(self.memoryLimit >> 10) KiB) and still sent until this is fixed")
            return
        }
        do {
            try self.loadState()
            try self.recoverSegments()
        } catch {
            self.segments = []
            self.holes = []
            self.acknowledgedAbove = []
            self.acknowledgedThrough = 0
            self.nextSequence = 1
            self.recoveredDamage = 0
            self.handle = nil
            self.unreadableContent = error
            self.appendProblem = error
            self.recoveryNotes.append("\(error.message); readings are kept in memory (up to \(self.memoryLimit >> 10) KiB) and still sent until the agent restarts")
        }
    }

    /// Opens (creating when needed) the spool in `directory`, recovering from a crash. A directory that cannot be
    /// used makes a spool that runs from memory, as `init(directoryOrMemory:settings:)` does.
    ///
    /// - Throws: `AgentError.storageFailure` when what the directory holds cannot be read.
    public convenience init(directory: String, settings: SpoolSettings = .init()) throws(AgentError) {
        self.init(directoryOrMemory: directory, settings: settings)
        if let error = self.unreadableContent { throw error }
    }

    deinit {
        try? self.sync()
        try? self.writeState()
        try? self.active?.close()
    }

    public var status: Status {
        Status(
            depth: self.segments.reduce(0) { $0 + $1.count } + self.memory.count - self.acknowledgedCountInSegments,
            bytes: self.segments.reduce(0) { $0 + $1.bytes }, dropped: self.dropped,
            recoveredDamage: self.recoveredDamage, inMemory: self.memory.count)
    }

    private var acknowledgedCountInSegments: Int {
        var n = 0
        for s in self.segments where s.count > 0 {
            if s.lastSequence <= self.acknowledgedThrough {
                n += s.count
            } else if s.firstSequence <= self.acknowledgedThrough {
                n += Int(self.acknowledgedThrough - s.firstSequence + 1)
            }
        }
        return n + self.acknowledgedAbove.count
    }

    // MARK: writing

    /// Appends a record and returns its sequence number. The record is on flash after the next `sync()`, which
    /// happens by itself once `syncInterval` has passed (immediately when it is zero).
    ///
    /// - Throws: `AgentError.storageFailure` when flash did not take the record (it is then kept in memory and
    ///   still sent: the error is for reporting) or when a sync failed.
    @discardableResult
    public func append(_ payload: [UInt8]) throws(AgentError) -> UInt64 {
        let sequence = self.nextSequence
        try self.append(contentsOf: [payload])
        return sequence
    }

    /// Appends a record for each payload, in order, as `append(_:)` does, with one write for the records that go
    /// to one segment instead of one per record (the run loop appends what it handled since it last waited).
    ///
    /// - Throws: as `append(_:)`. When flash refuses a write, the records not written, that one's and the
    ///   following ones, are kept in memory (the next append tries flash again).
    public func append(contentsOf payloads: [[UInt8]]) throws(AgentError) {
        guard !payloads.isEmpty else { return }
        let first = self.nextSequence
        self.nextSequence += UInt64(payloads.count)
        var written = 0
        do {
            while written < payloads.count {
                try self.write(payloads[written...], firstSequence: first + UInt64(written), written: &written)
            }
        } catch {
            for i in written..<payloads.count {
                self.keepInMemory(SpoolRecord(sequence: first + UInt64(i), payload: payloads[i]))
            }
            self.appendProblem = error
            throw error
        }
        self.appendProblem = nil
        if self.unsyncedSince == nil { self.unsyncedSince = self.clock.now }
        try self.enforceLimit()
        try self.syncIfDue()
    }

    /// Writes records for `payloads` (sequence numbers from `firstSequence`) at the end of the active segment (a
    /// new one when the first does not fit), as many as the segment takes, in one write, and adds how many are
    /// complete on flash to `written`.
    private func write(_ payloads: ArraySlice<[UInt8]>, firstSequence: UInt64, written: inout Int) throws(AgentError) {
        let firstSize = SpoolRecord.headerSize + (payloads.first?.count ?? 0)
        if self.active == nil || (self.segments.last?.bytes ?? 0) + firstSize > self.settings.segmentBytes {
            try self.rotate(firstSequence: firstSequence)
        }
        guard let fd = self.active else {
            throw AgentError(.storageFailure, "the spool in \(self.directory) has no open segment")
        }
        var room = self.settings.segmentBytes - (self.segments.last?.bytes ?? 0)
        var bytes: [UInt8] = []
        var count = 0
        for payload in payloads {
            let size = SpoolRecord.headerSize + payload.count
            if count > 0 && size > room { break }
            SpoolRecord.encode(sequence: firstSequence + UInt64(count), payload: payload, into: &bytes)
            room -= size
            count += 1
        }
        let (taken, failure) = Self.write(fd, bytes)
        // The records the file holds whole.
        var complete = 0
        var end = 0
        for payload in payloads.prefix(count) {
            let next = end + SpoolRecord.headerSize + payload.count
            guard next <= taken else { break }
            end = next
            complete += 1
        }
        if complete > 0 {
            self.segments[self.segments.count - 1].lastSequence = firstSequence + UInt64(complete) - 1
            self.segments[self.segments.count - 1].bytes += end
            written += complete
        }
        if let failure {
            // A partial write leaves a torn record that the next open cuts off; reopen a fresh segment so the
            // next append does not land behind the damage.
            try? fd.close()
            self.active = nil
            if let last = self.segments.last, last.count == 0 {
                // Nothing in it: remove it, or a full disk would get one more empty file per reading.
                self.handle?.remove(last.name)
                self.segments.removeLast()
            }
            throw Self.storageError("could not append a reading to the spool in \(self.directory)", Errno(rawValue: failure))
        }
    }

    private func keepInMemory(_ record: SpoolRecord) {
        self.memory.append(record)
        self.memoryBytes += record.payload.count
        while self.memoryBytes > self.memoryLimit, self.memory.count > 1 {
            let oldest = self.memory.removeFirst()
            self.memoryBytes -= oldest.payload.count
            guard oldest.sequence > self.acknowledgedThrough else { continue }
            if self.acknowledgedAbove.remove(oldest.sequence) == nil { self.dropped += 1 }
            // Gone for good: the watermark steps over it.
            if let last = self.holes.last, last.upperBound &+ 1 == oldest.sequence {
                self.holes[self.holes.count - 1] = last.lowerBound...oldest.sequence
            } else {
                self.holes.append(oldest.sequence...oldest.sequence)
            }
        }
        self.advanceWatermark()
    }

    /// Makes every appended record durable (fsync), and writes the acknowledgement state if it changed.
    public func sync() throws(AgentError) {
        if let fd = self.active, self.unsyncedSince != nil {
            guard fsync(fd.rawValue) == 0 else {
                let code = errno
                let error = Self.storageError(
                    "could not flush the spool in \(self.directory) to flash (\(String(cString: strerror(code))))", Errno(rawValue: code))
                self.syncProblem = error
                throw error
            }
        }
        self.unsyncedSince = nil
        if self.stateDirtySince != nil {
            do {
                try self.writeState()
            } catch {
                self.syncProblem = error
                throw error
            }
        }
        self.syncProblem = nil
    }

    /// Syncs when the sync interval has passed since the oldest unsynced write; call it from a timer too.
    public func syncIfDue() throws(AgentError) {
        guard let due = self.syncDue, self.clock.now >= due else { return }
        try self.sync()
    }

    private func updateSyncDue() {
        let oldest: ContinuousClock.Instant?
        switch (self.unsyncedSince, self.stateDirtySince) {
        case (let a?, let b?): oldest = min(a, b)
        case (let a?, nil): oldest = a
        case (nil, let b?): oldest = b
        case (nil, nil): oldest = nil
        }
        self.syncDue = oldest.map { $0 + self.settings.syncInterval }
    }

    // MARK: reading and acknowledging

    /// Unacknowledged records with a sequence above `after`, oldest first, at most `limit` of them.
    public func pending(after: UInt64 = 0, limit: Int = 256) throws(AgentError) -> [SpoolRecord] {
        var out: [SpoolRecord] = []
        let floor = max(after, self.acknowledgedThrough)
        for segment in self.segments where segment.count > 0 && segment.lastSequence > floor {
            // Only unacknowledged records above the floor, at most the rest of the limit.
            let found = try self.records(in: segment, after: floor, limit: limit - out.count)
            if out.isEmpty { out = found } else { out += found }
            if out.count >= limit { break }
        }
        guard !self.memory.isEmpty else { return out }
        out += self.memory.lazy.filter { $0.sequence > floor && !self.acknowledgedAboveHolds($0.sequence) }.prefix(limit)
        out.sort { $0.sequence < $1.sequence }
        return Array(out.prefix(limit))
    }

    /// The server acknowledged these records (PUBACK): they are trimmed once every older one is acknowledged too.
    public func acknowledge(_ sequences: some Sequence<UInt64>) throws(AgentError) {
        for s in sequences where s > self.acknowledgedThrough {
            if s == self.acknowledgedThrough &+ 1 && self.acknowledgedAbove.isEmpty {
                self.acknowledgedThrough = s  // in order, the usual case: no set to go through
            } else {
                self.acknowledgedAbove.insert(s)
            }
        }
        self.advanceWatermark()
        if self.stateDirtySince == nil { self.stateDirtySince = self.clock.now }
        try self.trim()
        try self.syncIfDue()
    }

    // MARK: internals

    /// `acknowledgedAbove.contains(sequence)`, without hashing while the set is empty (acknowledgements in order).
    private func acknowledgedAboveHolds(_ sequence: UInt64) -> Bool {
        !self.acknowledgedAbove.isEmpty && self.acknowledgedAbove.contains(sequence)
    }

    /// Moves the watermark over every acknowledged sequence and every hole that follows it, and forgets the records
    /// kept in memory that it passed.
    private func advanceWatermark() {
        while true {
            if !self.acknowledgedAbove.isEmpty, self.acknowledgedAbove.remove(self.acknowledgedThrough + 1) != nil {
                self.acknowledgedThrough += 1
            } else if let hole = self.holes.first, hole.lowerBound <= self.acknowledgedThrough + 1 {
                self.holes.removeFirst()
                self.acknowledgedThrough = max(self.acknowledgedThrough, hole.upperBound)
            } else {
                break
            }
        }
        if let first = self.memory.first, first.sequence <= self.acknowledgedThrough {
            self.memory.removeAll { $0.sequence <= self.acknowledgedThrough }
            self.memoryBytes = self.memory.reduce(0) { $0 + $1.payload.count }
        }
    }

    private func rotate(firstSequence: UInt64) throws(AgentError) {
        if let fd = self.active {
            if self.unsyncedSince != nil { _ = fsync(fd.rawValue) }
            try? fd.close()
            self.active = nil
            self.unsyncedSince = nil
        }
        let number = String(firstSequence)
        let name = String(repeating: "0", count: max(0, 20 - number.count)) + number + ".seg"
        let directory = try self.usableDirectory()
        do {
            // A new segment's name is never in use: whatever is there (a planted link) is not ours to follow.
            self.active = FileDescriptor(rawValue: try directory.create(name, O_WRONLY | O_APPEND))
        } catch {
            throw Self.storageError("could not create a spool segment in \(self.directory)", error)
        }
        self.segments.append(
            Segment(firstSequence: firstSequence, lastSequence: firstSequence &- 1, name: name, path: self.directory.appending(name), bytes: 0))
        try? directory.sync()
    }

    private func trim() throws(AgentError) {
        // The newest segment stays, acknowledged or not, until it is full and a new one begins: removing it would
        // mean a new file (and a directory fsync on flash) for every reading while the agent keeps up. Acknowledged
        // records in it are skipped by `pending` and by the recovery after a restart (they are below the watermark).
        while let first = self.segments.first, self.segments.count > 1 {
            let fullyAcknowledged = first.count > 0 && first.lastSequence <= self.acknowledgedThrough
            let empty = first.count == 0
            guard fullyAcknowledged || empty else { break }
            self.handle?.remove(first.name)
            self.segments.removeFirst()
        }
    }

    private func enforceLimit() throws(AgentError) {
        while self.segments.reduce(0, { $0 + $1.bytes }) > self.settings.maxBytes, self.segments.count > 1 {
            let oldest = self.segments.removeFirst()
            if oldest.lastSequence > self.acknowledgedThrough {
                let unacked = oldest.lastSequence - max(self.acknowledgedThrough, oldest.firstSequence &- 1)
                let ackedAbove = self.acknowledgedAbove.filter { $0 <= oldest.lastSequence }
                self.dropped += unacked - UInt64(ackedAbove.count)
                self.acknowledgedAbove.subtract(ackedAbove)
                self.acknowledgedThrough = oldest.lastSequence
                self.advanceWatermark()
            }
            self.handle?.remove(oldest.name)
            if self.stateDirtySince == nil { self.stateDirtySince = self.clock.now }
        }
    }

    private func recoverSegments() throws(AgentError) {
        guard let directory = self.handle else { return }
        let names: [String]
        do {
            names = try directory.names().filter { $0.hasSuffix(".seg") }
        } catch {
            throw Self.storageError("could not read the spool directory \(self.directory)", error)
        }
        for name in names {
            let path = self.directory.appending(name)
            guard let first = UInt64(name.dropLast(4)) else { continue }
            var info = stat()
            guard fstatat(directory.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if info.st_mode & S_IFMT != S_IFREG {
                // A link, a FIFO, a directory…: never a segment the agent wrote. Removing the name (never what a
                // link points at) frees it for the segment that will need it.
                let removed = info.st_mode & S_IFMT != S_IFDIR && directory.remove(name)
                self.recoveryNotes.append(
                    "\(path) is not a spool segment tb-agent wrote (\(Self.kind(info.st_mode))); it was \(removed ? "removed" : "left alone") and never followed: check who else can write in \(self.directory)")
                continue
            }
            let bytes: [UInt8]
            do {
                bytes = try directory.read(name, limit: .max) ?? []
            } catch {
                throw Self.storageError("could not read the spool segment \(path)", error)
            }
            let scan = SpoolRecord.scan(bytes)
            if scan.damaged {
                // A torn tail (or damage): keep what is before it, cut the rest so appends stay readable.
                self.recoveredDamage += scan.damagedBytes
                // Only a file that is the agent's alone: a second name for it (a hard link) may be another file.
                if let fd = try? directory.open(name, O_WRONLY) {
                    var opened = stat()
                    if fstat(fd, &opened) == 0 && opened.st_nlink == 1 && opened.st_uid == geteuid() {
                        _ = ftruncate(fd, off_t(scan.validLength))
                    }
                    close(fd)
                }
                let kept = scan.records.last.map { "after reading \($0.sequence)" } ?? "(no intact reading in it)"
                self.recoveryNotes.append(
                    "the spool segment \(path) was damaged (a power cut during a write, or a flash error): \(scan.damagedBytes) bytes \(kept) were cut off; every complete reading before the damage is kept")
            }
            let last = scan.records.last?.sequence ?? (first &- 1)
            if scan.records.isEmpty || last <= self.acknowledgedThrough {
                directory.remove(name)
                continue
            }
            self.segments.append(
                Segment(firstSequence: scan.records.first?.sequence ?? first, lastSequence: last, name: name, path: path, bytes: scan.validLength))
            self.nextSequence = max(self.nextSequence, last + 1)
        }
        self.nextSequence = max(self.nextSequence, self.acknowledgedThrough + 1)
        // Sequences no segment holds: readings cut off by damage in a segment before the last, or a segment
        // trimmed just before a crash, before the watermark reached state.json. Nobody will acknowledge them, so
        // without this the watermark would stop below them for good: nothing trimmed any more, and every later
        // reading sent again after each restart.
        var expected = self.acknowledgedThrough + 1
        for segment in self.segments {
            if segment.firstSequence > expected { self.holes.append(expected...(segment.firstSequence - 1)) }
            expected = max(expected, segment.lastSequence + 1)
        }
        self.advanceWatermark()
    }

    private func loadState() throws(AgentError) {
        guard let bytes = try? self.handle?.read("state.json", limit: 4096) else { return }
        // {"acked":N,"dropped":M}: a damaged state file only costs a replay (duplicates the server tolerates).
        guard let state = try? JSONValue.parse(bytes) else { return }
        self.acknowledgedThrough = state["acked"]?.int64Value.flatMap { UInt64(exactly: $0) } ?? 0
        self.dropped = state["dropped"]?.int64Value.flatMap { UInt64(exactly: $0) } ?? 0
    }

    private func writeState() throws(AgentError) {
        let text = "{\"acked\":\(self.acknowledgedThrough),\"dropped\":\(self.dropped)}\n"
        let directory = try self.usableDirectory()
        do {
            // state.json.tmp is created afresh: a link planted there is removed, not followed.
            try directory.replace("state.json", with: Array(text.utf8), mode: 0o600)
        } catch {
            throw Self.storageError("could not save the spool's state in \(self.directory)", error)
        }
        self.stateDirtySince = nil
    }

    // MARK: the directory

    /// The spool directory, opened again if it could not be used before.
    private func usableDirectory() throws(AgentError) -> StateFileDirectory {
        if let handle = self.handle { return handle }
        if let unreadable = self.unreadableContent { throw unreadable }
        let handle = try self.openDirectory()
        if self.startedInMemory {
            // Readings of an earlier run: sequence numbers handed out since the start could collide with theirs.
            let names = (try? handle.names()) ?? []
            if names.contains(where: { $0.hasSuffix(".seg") || $0 == "state.json" }) {
                throw AgentError(
                    .storageFailure,
                    "the spool directory \(self.directory) can be used again but holds readings of an earlier run: they are sent after a restart (`systemctl restart tb-agent`); meanwhile readings are kept in memory")
            }
        }
        self.handle = handle
        return handle
    }

    /// Creates (0700) and opens the spool directory, refusing a link in its place and a directory another user owns
    /// or may write in.
    private func openDirectory() throws(AgentError) -> StateFileDirectory {
        let handle: StateFileDirectory
        do {
            handle = try StateFileDirectory(self.directory.string, create: 0o700)
        } catch {
            let fix: String
            switch error.errno {
            case ENOTDIR where error.operation.hasPrefix("opening"):
                fix = "something that is not a directory is in its place: remove it (`rm \(self.directory)`) so that the agent can create the spool there"
            case ELOOP:
                fix = "a symbolic link is in its place, which is not followed: remove it (`rm \(self.directory)`) so that the agent can create the spool there"
            case EACCES, EPERM:
                fix = "permission denied: the user running tb-agent (\(StateOwnership.userName(geteuid()))) must own it (`chown -R \(StateOwnership.userName(geteuid())): \(self.directory)`)"
            case EROFS:
                fix = "the file system is read-only; remount it read-write"
            case ENOSPC, EDQUOT:
                fix = "the file system is full; free space on it"
            default:
                fix = AtomicFile.IOError.text(error.errno)
            }
            throw AgentError(.storageFailure, "the spool directory \(self.directory) cannot be used: \(fix)", cause: error)
        }
        if let problem = StateOwnership.problem(handle.status, self.directory.string, what: "the spool directory") {
            throw AgentError(.storageFailure, problem)
        }
        return handle
    }

    // MARK: reading records in order

    /// Where the last read of a segment stopped: the file offset after the last record decoded, and the records
    /// decoded beyond those returned (oldest first). Replaying a backlog then decodes each record once, instead of
    /// reading and checksumming the whole segment for every batch (which made a long replay quadratic).
    private struct ReadPosition {
        var path: FilePath
        var offset: Int
        var ahead: ArraySlice<SpoolRecord>
        /// The sequence of the first record not returned yet (in `ahead`, or at `offset`).
        var next: UInt64
    }

    private var readPosition: ReadPosition? = nil

    /// How many bytes one read of a segment takes at most (more when a single record is larger).
    static let readChunk = 16 << 10

    /// The unacknowledged records of `segment` with a sequence above `floor`, oldest first, at most `limit` of them
    /// (fewer only when the segment has no more), continuing from the last read when it stopped at or before `floor`.
    private func records(in segment: Segment, after floor: UInt64, limit: Int) throws(AgentError) -> [SpoolRecord] {
        var position: ReadPosition
        if let last = self.readPosition, last.path == segment.path, last.next <= floor &+ 1 {
            position = last
        } else {
            // Another segment, or a step back (a reconnect replays what was sent but not acknowledged).
            position = ReadPosition(path: segment.path, offset: 0, ahead: [], next: 0)
        }
        defer { self.readPosition = position }
        var out: [SpoolRecord] = []
        while out.count < limit {
            if position.ahead.isEmpty {
                var chunk = try self.read(segment, at: position.offset, count: Self.readChunk)
                var scan = SpoolRecord.scan(chunk)
                if scan.records.isEmpty, let size = Self.recordSize(chunk), size > chunk.count, chunk.count == Self.readChunk {
                    // One record larger than a chunk.
                    chunk = try self.read(segment, at: position.offset, count: size)
                    scan = SpoolRecord.scan(chunk)
                }
                // Nothing more (the end of the file, or damage the scan of a whole segment would stop at too).
                guard !scan.records.isEmpty else { break }
                position.offset += scan.validLength
                position.ahead = scan.records[...]
            }
            while out.count < limit, let record = position.ahead.first {
                position.ahead = position.ahead.dropFirst()
                position.next = record.sequence &+ 1
                if record.sequence > floor && !self.acknowledgedAboveHolds(record.sequence) { out.append(record) }
            }
        }
        if let first = position.ahead.first { position.next = first.sequence }
        return out
    }

    /// The size of the record starting at the beginning of `bytes`, from its header; nil without a valid header.
    static func recordSize(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= SpoolRecord.headerSize, Array(bytes[0..<2]) == SpoolRecord.magic, bytes[2] == SpoolRecord.version
        else { return nil }
        let length = (0..<4).reduce(0) { $0 | Int(bytes[3 + $1]) << (8 * $1) }
        guard length <= SpoolRecord.maxPayloadSize else { return nil }
        return SpoolRecord.headerSize + length
    }

    /// Up to `count` bytes of the segment at `offset` (fewer at its end).
    private func read(_ segment: Segment, at offset: Int, count: Int) throws(AgentError) -> [UInt8] {
        guard let directory = self.handle else {
            throw AgentError(.storageFailure, "the spool directory \(self.directory) is not open to read \(segment.path)")
        }
        do {
            let fd = FileDescriptor(rawValue: try directory.open(segment.name, O_RDONLY))
            return try fd.closeAfter {
                var out = [UInt8](repeating: 0, count: count)
                var filled = 0
                while filled < count {
                    let n = try out.withUnsafeMutableBytes { buffer in
                        try fd.read(fromAbsoluteOffset: Int64(offset + filled), into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                    }
                    if n == 0 { break }
                    filled += n
                }
                out.removeLast(count - filled)
                return out
            }
        } catch {
            throw Self.storageError("could not read \(segment.path)", error)
        }
    }

    /// `FileDescriptor.writeAll`, without its generic path (a metadata lookup on every reading): `write(2)` until
    /// every byte is taken, again after EINTR.
    /// Returns how many bytes were written, and the errno that stopped it before the end.
    static func write(_ fd: FileDescriptor, _ bytes: [UInt8]) -> (written: Int, errno: CInt?) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd.rawValue, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return (offset, errno)
                }
                offset += n
            }
            return (offset, nil)
        }
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFLNK: return "a symbolic link"
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR, S_IFBLK: return "a device"
        default: return "not a regular file"
        }
    }

    /// Why `user` (the one running the agent) could not use the spool directory, in a sentence naming the fix: what
    /// makes the agent keep readings in memory only. Nil when it can, or when the directory does not exist yet (the
    /// agent creates it). Looks without changing anything (for `doctor`).
    public static func problem(directory: String, user: uid_t = geteuid()) -> String? {
        var status = stat()
        guard lstat(directory, &status) == 0 else {
            if errno == ENOENT { return nil }
            return "cannot look at the spool directory \(directory): \(AtomicFile.IOError.text(errno))"
        }
        switch status.st_mode & S_IFMT {
        case S_IFDIR:
            break
        case S_IFLNK:
            return "the spool directory \(directory) is a symbolic link, which the agent does not follow: remove it (`rm \(directory)`) so that the agent can create the spool there"
        default:
            return "the spool directory \(directory) is not a directory: remove it (`rm \(directory)`) so that the agent can create the spool there"
        }
        if let problem = StateOwnership.problem(status, directory, what: "the spool directory", user: user) { return problem }
        if status.st_mode & 0o700 != 0o700 {
            return "the spool directory \(directory) is not writable by its owner (mode \(String(status.st_mode & 0o7777, radix: 8))): `chmod 700 \(directory)`"
        }
        guard user == geteuid() else { return nil }  // what is in it: only as the agent's user
        do {
            let handle = try StateFileDirectory(directory)
            for name in try handle.names() where name.hasSuffix(".seg") || name == "state.json" {
                close(try handle.open(name, O_RDONLY))
            }
        } catch {
            return "the spool directory \(directory) holds a file the agent cannot read (\(error)): `chown -R \(StateOwnership.userName(user)): \(directory)`"
        }
        return nil
    }

    static func storageError(_ what: String, _ error: any Error) -> AgentError {
        let errno = (error as? Errno) ?? (error as? AtomicFile.IOError).map { Errno(rawValue: $0.errno) }
        var fix = ""
        if errno == .noSpace { fix = ": the file system is full; free space on it" }
        if errno == .readOnlyFileSystem { fix = ": the file system is read-only; remount it read-write" }
        if errno == .fileTooLarge { fix = ": a file size limit was reached (ulimit -f, systemd's LimitFSIZE=); raise it" }
        if errno == .permissionDenied { fix = ": permission denied; the service user must own the state directory" }
        if errno == .fileExists || errno == .tooManySymbolicLinkLevels {
            fix = ": a file or link that tb-agent did not make is in the way (it is not followed): remove it, and check who else can write in the state directory"
        }
        let cause: any Error & Sendable = error is AtomicFile.IOError ? error : (errno ?? error)
        return AgentError(.storageFailure, "\(what)\(fix)", cause: cause)
    }
}
