import TBJSON

/// ThingsBoard's claiming settings (`security.claim.*` and the claim cache's `timeToLiveInMinutes`).
public struct ClaimingSettings: Sendable, Hashable {
    /// `security.claim.allowClaimingByDefault` (true): any device without a customer may register a claim. When
    /// false, only a device whose server attribute `claimingAllowed` is true may.
    public var allowClaimingByDefault = true
    /// `security.claim.duration` (24 h): the window of a claim request whose `durationMs` is absent or not positive.
    public var defaultDuration: Duration = .seconds(86_400)
    /// How long the claim cache keeps an entry after it was stored (`cache.specs.claimDevices`, 24 h). Until then a
    /// new claim request does not replace it, even once its window has passed.
    public var cacheTimeToLive: Duration = .seconds(86_400)

    public init() {}
}

/// The answer of ThingsBoard's claim endpoint (`ClaimResponse`).
public enum ClaimResponse: String, Sendable, Hashable {
    case success = "SUCCESS"
    case failure = "FAILURE"
    case claimed = "CLAIMED"
}

/// One registered claim: the secret the device sent and when its window closes.
public struct ClaimRecord: Sendable, Hashable {
    public var secretKey: String
    /// Milliseconds since the epoch when the window closes (`ClaimData.expirationTime`).
    public var expiresAt: Int64
    /// When the entry entered the claim cache.
    public var storedAt: Int64
}

/// What happened to a device's claim request (`ClaimDevicesServiceImpl.registerClaimingInfo`). The device learns
/// none of it: it only gets its PUBACK.
public enum ClaimRegistration: Sendable, Hashable {
    /// A new entry was stored.
    case stored(ClaimRecord)
    /// An entry was already cached (put-if-absent): the request changed nothing.
    case kept(ClaimRecord)
    /// Refused, with the reason ThingsBoard logs.
    case refused(String)
}

/// The claim cache and the customers of claimed devices, with ThingsBoard's rules. A plain value with no I/O; the
/// simulator keeps it in memory only (ThingsBoard keeps it in a cache).
public struct ClaimBook: Sendable {
    public var settings: ClaimingSettings
    public private(set) var records: [String: ClaimRecord] = [:]
    /// The customer each claimed device belongs to.
    public private(set) var customers: [String: String] = [:]
    /// Devices with the server attribute `claimingAllowed` = true.
    public private(set) var claimingAllowed: Set<String> = []

    public init(settings: ClaimingSettings = ClaimingSettings()) {
        self.settings = settings
    }

    /// The device's cached entry, if the cache still holds it at `now`.
    public func record(device: String, now: Int64) -> ClaimRecord? {
        guard let record = self.records[device] else { return nil }
        return now < record.storedAt + Self.millis(self.settings.cacheTimeToLive) ? record : nil
    }

    /// A device's claim request: `durationMs` not positive means the default window.
    public mutating func register(device: String, secretKey: String, durationMs: Int64, now: Int64) -> ClaimRegistration {
        if !self.settings.allowClaimingByDefault && !self.claimingAllowed.contains(device) {
            return .refused("claiming is not allowed for the device: allowClaimingByDefault is off and its server attribute claimingAllowed is not true")
        }
        if self.customers[device] != nil {
            return .refused("the device has already been claimed")
        }
        if let existing = self.record(device: device, now: now) { return .kept(existing) }
        let window = durationMs > 0 ? durationMs : Self.millis(self.settings.defaultDuration)
        let (expiry, overflow) = now.addingReportingOverflow(window)
        let record = ClaimRecord(secretKey: secretKey, expiresAt: overflow ? Int64.max : expiry, storedAt: now)
        self.records[device] = record
        return .stored(record)
    }

    /// A person's claim (`ClaimDevicesServiceImpl.claimDevice`): a wrong secret or a closed window fails and evicts
    /// the entry, so the device must send a new request before anyone can claim it.
    public mutating func claim(device: String, secretKey: String, customer: String, now: Int64) -> ClaimResponse {
        guard let record = self.record(device: device, now: now) else {
            self.records.removeValue(forKey: device)
            return self.customers[device] == nil ? .failure : .claimed
        }
        let secretMatches = (secretKey.isEmpty && record.secretKey.isEmpty) || secretKey == record.secretKey
        self.records.removeValue(forKey: device)
        if now > record.expiresAt || !secretMatches { return .failure }
        if self.customers[device] != nil { return .claimed }
        self.customers[device] = customer
        return .success
    }

    /// Unassigns the customer (`reClaimDevice`); without `allowClaimingByDefault` the device gets `claimingAllowed`.
    public mutating func reclaim(device: String) -> String? {
        self.records.removeValue(forKey: device)
        guard let customer = self.customers.removeValue(forKey: device) else { return nil }
        if !self.settings.allowClaimingByDefault { self.claimingAllowed.insert(device) }
        return customer
    }

    public mutating func setClaimingAllowed(_ allowed: Bool, device: String) {
        if allowed { self.claimingAllowed.insert(device) } else { self.claimingAllowed.remove(device) }
    }

    public mutating func forget(device: String) {
        self.records.removeValue(forKey: device)
        self.customers.removeValue(forKey: device)
        self.claimingAllowed.remove(device)
    }

    /// The claim state for the control interface. tb-sim is a test tool: the secret is shown to tests.
    public func json(device: String, now: Int64) -> JSONValue {
        let record = self.record(device: device, now: now)
        return .object([
            ("customer", self.customers[device].map(JSONValue.string) ?? .null),
            ("claimingAllowed", .bool(self.settings.allowClaimingByDefault || self.claimingAllowed.contains(device))),
            ("pending", record.map { r in
                .object([("secretKey", .string(r.secretKey)), ("expiresAt", .integer(r.expiresAt)),
                         ("expired", .bool(now > r.expiresAt)), ("storedAt", .integer(r.storedAt))])
            } ?? .null),
        ])
    }

    static func millis(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
    }
}
