import ArgumentParser
import Foundation
import Kiln

/// `kiln devices`: every OpenCL device with the selectors that pick it.
struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every OpenCL device, with the selectors that pick it and the default marked.",
        discussion: "With --device, show only the device that selector picks (or fail, listing the devices).")

    @OptionGroup var options: DeviceOptions

    @Flag(name: .long, help: "Write JSON Lines instead of a table: one {\"type\": \"device\", ...} object per device.")
    var json = false

    func run() throws {
        do {
            let devices = try Device.list()
            let defaultIndex = try? DeviceSelector.defaultIndex(in: devices)
            var shown = Array(devices.indices)
            if let selector = options.device {
                shown = [try DeviceSelector.resolve(selector, in: devices)]
            } else if ProcessInfo.processInfo.environment[DeviceSelector.environmentVariable] != nil, defaultIndex == nil {
                // KILN_DEVICE is set but matches nothing: report the same listing error.
                _ = try DeviceSelector.defaultIndex(in: devices)
            }
            if json {
                try printJSON(devices: shown.map { devices[$0] }, defaultIndex: defaultIndex.map { devices[$0] })
            } else {
                printTable(devices: shown.map { devices[$0] }, defaultDevice: defaultIndex.map { devices[$0] })
            }
        } catch {
            throw Failure(error)
        }
    }

    private func printTable(devices: [DeviceInfo], defaultDevice: DeviceInfo?) {
        for info in devices {
            let mark = info == defaultDevice ? "  (default)" : ""
            print("\(info.location)  \(info.name)\(mark)")
            print("    selectors:      \(info.selectors.joined(separator: ", "))")
            print("    platform:       \(info.platformName) (\(info.platformVersion))")
            print("    vendor, driver: \(info.vendor), \(info.driverVersion)")
            print("    type:           \(info.type.rawValue), \(info.computeUnits) compute units at \(info.maxClockMHz) MHz")
            print("    memory:         \(formatBytes(Int(clamping: info.globalMemory))) global, \(formatBytes(Int(clamping: info.maxAllocation))) max allocation, \(formatBytes(Int(clamping: info.localMemory))) local (\(info.localMemoryType))")
            print("    work-group:     up to \(info.maxWorkGroupSize)")
            print("    OpenCL C:       \(info.openCLCVersion); fp16 \(info.fp16 ? "yes" : "no"), fp64 \(info.fp64 ? "yes" : "no"), profiling \(info.profiling ? "yes" : "no")")
            print("    extensions:     \(info.extensions.count) (\(info.extensions.prefix(6).joined(separator: " "))\(info.extensions.count > 6 ? " ..." : ""))")
        }
    }

    private func printJSON(devices: [DeviceInfo], defaultIndex: DeviceInfo?) throws {
        struct Entry: Encodable {
            let info: DeviceInfo
            let selectors: [String]
            let isDefault: Bool
            enum CodingKeys: String, CodingKey { case selectors, isDefault = "default" }
            func encode(to encoder: any Encoder) throws {
                try info.encode(to: encoder)
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(selectors, forKey: .selectors)
                try container.encode(isDefault, forKey: .isDefault)
            }
        }
        let console = Console(json: true)
        for info in devices {
            try console.emit(Entry(info: info, selectors: info.selectors, isDefault: info == defaultIndex), type: "device")
        }
    }
}
