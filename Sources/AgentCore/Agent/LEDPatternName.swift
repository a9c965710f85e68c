/// What the status LED tells a person, as a name; the pattern engine turns a name into an on/off timeline.
public enum StatusSignal: String, Sendable, Equatable, CaseIterable {
    /// Fast blink, 4 Hz: provisioning.
    case provisioning
    /// Slow blink, 1 Hz: connecting, offline, buffering.
    case connecting
    /// Steady on: online.
    case online
    /// Repeating double flash: a person must act (provision refused, credentials rejected, config invalid).
    case needsPerson
    /// Rapid flicker: the button has been held past the re-provision threshold, release now.
    case releaseNow
    /// A distinctive pattern for "which box is this?".
    case identify
    /// Off: the agent stopped.
    case off
}
