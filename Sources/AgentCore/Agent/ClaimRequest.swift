import TBJSON

/// The request a device publishes on `v1/devices/me/claim` so that a person can claim it (thingsboard-ota-limits-
/// claiming.md §3): `{"secretKey":"…","durationMs":N}`.
///
/// ThingsBoard answers nothing but the PUBACK: whether it stored the claim (it refuses silently when the device
/// already has a customer or claiming is not allowed) and whether a person then claims it are not known to the
/// device. It stores the first request of a window and ignores repeats (put-if-absent), so a second request within
/// the window changes neither the secret nor the window.
public struct ClaimRequest: Sendable, Equatable {
    public static let topic = "v1/devices/me/claim"

    public var secret: Secret
    public var duration: Duration

    public init(secret: Secret, duration: Duration) {
        self.secret = secret
        self.duration = duration
    }

    public init(_ settings: ClaimingSettings, duration: Duration? = nil) {
        self.init(secret: settings.secret, duration: duration ?? settings.duration)
    }

    /// Milliseconds, at least 1: ThingsBoard replaces 0 and below with its own default (24 h).
    public var durationMs: Int64 {
        let (seconds, attoseconds) = self.duration.components
        let ms = seconds.multipliedReportingOverflow(by: 1000)
        guard !ms.overflow else { return Int64.max }
        return max(1, ms.partialValue + attoseconds / 1_000_000_000_000_000)
    }

    /// The payload; it holds the secret in clear, for the PUBLISH only.
    public var payload: [UInt8] {
        JSONValue.object([("secretKey", .string(self.secret.revealed)), ("durationMs", .integer(self.durationMs))])
            .serializedBytes
    }

    /// What to tell a person once the server has the request (its PUBACK), without the secret: ThingsBoard does
    /// not confirm the claim, so this says what to do rather than what happened.
    public func instructions(deviceName: String) -> String {
        let window = DurationText.format(self.duration)
        return "ThingsBoard received the claim request (it does not say whether it accepted it). Within \(window), "
            + "a customer user claims the device in ThingsBoard with the device name \"\(deviceName)\" and the "
            + "claiming secret from [claiming] (the secret is not shown here). A request repeated within the window "
            + "does not change the secret or the window; if claiming fails, check that the device has no customer "
            + "yet and that the server allows claiming (security.claim.allowClaimingByDefault, or the device's "
            + "server attribute claimingAllowed = true)."
    }
}
