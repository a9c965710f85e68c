/// `[spool]`: the offline spool on flash that holds every reading until the server acknowledged it.
public struct SpoolSettings: Sendable, Equatable {
    /// `max_size` (default 64 MiB): past it the oldest readings are dropped and counted.
    public var maxBytes: Int
    /// `segment_size` (default 1 MiB): the spool is a series of append-only files of about this size.
    public var segmentBytes: Int
    /// `sync_interval` (default 1s): appended readings are fsynced at most this long after they were written.
    /// `"0s"` fsyncs every reading (no reading at risk in a power cut, one flash write per reading); the
    /// default puts at most one second of readings at risk and groups writes.
    public var syncInterval: Duration

    public init(maxBytes: Int = 64 << 20, segmentBytes: Int = 1 << 20, syncInterval: Duration = .seconds(1)) {
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.syncInterval = syncInterval
    }
}
