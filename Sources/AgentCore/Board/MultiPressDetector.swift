/// Recognises the claiming gesture: `count` short presses (each released within `maxPress`) with the first press
/// and the last release at most `within` apart. It reads the events of the ``LongPressDetector``, so the two never
/// disagree: a press that reaches the re-provision threshold is not short and starts the count again, a button
/// pressed at start is ignored until released, and a stuck button never completes the gesture.
///
/// A chattering button could produce the gesture again and again: after a gesture, further ones are refused until
/// `cooldown` has passed (the runtime sets it to the claim window, so at most one request per window).
public struct MultiPressDetector: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// The gesture: send a claim request.
        case gesture(at: Duration)
        /// The gesture again, within the cooldown: nothing is sent; `retryIn` is how long until one would be.
        case refused(at: Duration, retryIn: Duration)
    }

    /// The board lets at most one gesture through this often (the agent also sends one request per claim window).
    public static let boardCooldown: Duration = .seconds(10)

    public let count: Int
    public let within: Duration
    public let maxPress: Duration
    public let cooldown: Duration
    /// When each short press of the current run started.
    private var presses: [Duration] = []
    private var pressedAt: Duration?
    private var lastGesture: Duration?

    /// - Parameters:
    ///   - count: presses in the gesture (3).
    ///   - within: from the first press to the last release (2 s).
    ///   - maxPress: longest press that counts as short (600 ms; kept below the re-provision hold).
    ///   - cooldown: after a gesture, how long further ones are refused.
    public init(count: Int = 3, within: Duration = .seconds(2), maxPress: Duration = .milliseconds(600),
                cooldown: Duration) {
        self.count = max(count, 1)
        self.within = within
        self.maxPress = maxPress
        self.cooldown = cooldown
    }

    /// Feeds one event of the button's ``LongPressDetector``; returns the gesture, if this event completed one.
    public mutating func handle(_ event: LongPressDetector.Event) -> Outcome? {
        switch event {
        case .pressed(let at):
            self.pressedAt = at
            return nil
        case .released(let at, let heldFor):
            defer { self.pressedAt = nil }
            guard let start = self.pressedAt, heldFor <= self.maxPress else {
                self.presses.removeAll()
                return nil
            }
            self.presses.append(start)
            self.presses.removeAll { at - $0 > self.within }
            guard self.presses.count >= self.count else { return nil }
            self.presses.removeAll()
            if let last = self.lastGesture, at - last < self.cooldown {
                return .refused(at: at, retryIn: last + self.cooldown - at)
            }
            self.lastGesture = at
            return .gesture(at: at)
        case .thresholdReached, .stuck, .ignoredPressedAtStart, .armed, .reprovisionRequested:
            self.presses.removeAll()
            self.pressedAt = nil
            return nil
        }
    }
}
