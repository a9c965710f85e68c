import TBJSON

/// OTA packages: uploads, assignments with ThingsBoard's state telemetry and shared attributes, and the package a
/// chunk request gets (`DefaultOtaPackageStateService`, `DefaultTransportApiService`).
extension Simulator {
    func uploadOtaPackage(_ upload: OtaUpload) throws(SimulatorError) -> OtaPackage {
        let package = try self.ota.add(upload, now: self.nowMillis)
        self.eventLog.record("ota_package_created", [("package", package.json)])
        return package
    }

    func uploadOtaData(packageID: String, data: [UInt8], algorithm: String?, checksum: String?,
                       acceptWrongChecksum: Bool) throws(SimulatorError) -> OtaPackage {
        let parsed = try algorithm.map { name throws(SimulatorError) in try OtaUpload.algorithm(name) }
        let package = try self.ota.setData(packageID: packageID, data: data, algorithm: parsed, checksum: checksum,
                                           acceptWrongChecksum: acceptWrongChecksum)
        self.eventLog.record("ota_package_data", [("package", package.json)])
        return package
    }

    /// Uploads and assigns the configuration file's packages (a device or profile it names must exist).
    func seedOtaPackages(_ seeds: [OtaPackageSeed]) throws(SimulatorError) {
        for seed in seeds {
            do {
                let package = try self.uploadOtaPackage(seed.upload)
                for profile in seed.profiles { try self.assignOtaPackage(package.id, type: package.type, profile: profile) }
                for device in seed.devices { try self.assignOtaPackage(package.id, type: package.type, device: device) }
            } catch {
                throw SimulatorError("[[ota_packages]] \"\(seed.upload.package.title)\" version \"\(seed.upload.package.version)\": \(error.description)")
            }
        }
    }

    /// Assigns a package to a device (`nil` unassigns): the device then gets it, or its profile's, or nothing.
    func assignOtaPackage(_ packageID: String?, type: OtaPackageType, device: String) throws(SimulatorError) {
        guard let d = self.registry.device(named: device) else { throw SimulatorError("no device named \"\(device)\"") }
        if let packageID { _ = try self.ota.assignable(packageID, as: type) }
        let before = self.ota.effectivePackage(device: device, profile: d.profile, type: type)
        self.ota.assign(device: device, type: type, packageID: packageID)
        self.eventLog.record("ota_assigned", [("device", .string(device)), ("type", .string(type.rawValue)),
                                              ("package", packageID.map(JSONValue.string) ?? .null)])
        self.otaEffectiveChange(device: device, profile: d.profile, type: type, before: before)
    }

    /// Assigns a package to a profile: its devices without a package of their own get it.
    func assignOtaPackage(_ packageID: String?, type: OtaPackageType, profile: String) throws(SimulatorError) {
        guard self.registry.profile(named: profile) != nil else { throw SimulatorError("no profile named \"\(profile)\"") }
        if let packageID { _ = try self.ota.assignable(packageID, as: type) }
        let members = self.registry.devices.filter { $0.profile == profile && !self.ota.hasOwnAssignment(device: $0.name, type: type) }
        let before = members.map { self.ota.effectivePackage(device: $0.name, profile: profile, type: type) }
        self.ota.assign(profile: profile, type: type, packageID: packageID)
        self.eventLog.record("ota_assigned", [("profile", .string(profile)), ("type", .string(type.rawValue)),
                                              ("package", packageID.map(JSONValue.string) ?? .null),
                                              ("devices", .integer(Int64(members.count)))])
        for (device, previous) in zip(members, before) {
            self.otaEffectiveChange(device: device.name, profile: profile, type: type, before: previous)
        }
    }

    /// ThingsBoard acts only when the package in force changes: the new one is sent, or every key is deleted.
    private func otaEffectiveChange(device: String, profile: String, type: OtaPackageType, before: OtaPackage?) {
        let after = self.ota.effectivePackage(device: device, profile: profile, type: type)
        guard after?.id != before?.id else { return }
        if let after {
            self.sendOtaPackage(after, device: device)
        } else {
            try? self.deleteSharedAttributes(device: device, keys: OtaPackage.allAttributeKeys(type))
        }
    }

    /// `send` then `update`: target telemetry with QUEUED, then INITIATED, then the shared attributes (the keys that
    /// do not apply deleted first).
    private func sendOtaPackage(_ package: OtaPackage, device: String) {
        let p = package.type.prefix
        let ts = self.nowMillis
        var queued: [(String, JSONValue)] = [
            ("target_\(p)_title", .string(package.title)), ("target_\(p)_version", .string(package.version)),
        ]
        if let tag = package.tag { queued.append(("target_\(p)_tag", .string(tag))) }
        queued += [("target_\(p)_ts", .integer(ts)), ("\(p)_state", .string("QUEUED"))]
        self.recordTelemetry(device: device, entries: [TelemetryEntry(ts: ts, values: queued, deviceTimestamp: false)], source: .server)
        let initiated = TelemetryEntry(ts: self.nowMillis, values: [("\(p)_state", .string("INITIATED"))], deviceTimestamp: false)
        self.recordTelemetry(device: device, entries: [initiated], source: .server)
        let attributes = package.sharedAttributes
        try? self.deleteSharedAttributes(device: device, keys: attributes.deleted)
        try? self.setSharedAttributes(device: device, values: attributes.set)
    }

    /// The package a first chunk request of `type` gets, or ThingsBoard's refusal.
    func otaPackageForRequest(device: String, type: OtaPackageType) -> Result<OtaPackage, OtaRequestError> {
        guard let d = self.registry.device(named: device),
              let package = self.ota.effectivePackage(device: device, profile: d.profile, type: type)
        else { return .failure(.notFound) }
        if package.url != nil { return .failure(.failure) }
        guard package.data != nil else { return .failure(.notFound) }
        return .success(package)
    }

    /// The OTA keys of telemetry entries, into the device's OTA history.
    func recordOtaHistory(device: String, entries: [TelemetryEntry], source: OtaStateRecord.Source) {
        for entry in entries {
            let values = entry.values.filter { key, _ in OtaPackageType.allCases.contains { OtaStateRecord.isOtaKey(key, $0) } }
            if !values.isEmpty { self.ota.record(device: device, OtaStateRecord(ts: entry.ts, source: source, values: values)) }
        }
    }
}
