import Foundation
import Kiln
import Testing

@Suite("Data: subsets by class")
struct SubsetTests {
    /// Six one-feature samples whose input is their index, labelled 0 1 2 0 1 2.
    static func sixSamples() throws -> ArrayDataset {
        try ArrayDataset(inputs: [0, 1, 2, 3, 4, 5], featureShape: [1], targets: .classes([0, 1, 2, 0, 1, 2], classes: 3))
    }

    @Test("subset(classes:) keeps the samples of the classes, in dataset order, relabelled by position")
    func byClass() throws {
        let data = try Self.sixSamples()
        let picked = try data.subset(classes: [2, 1])
        #expect(picked.inputs == [1, 2, 4, 5])
        #expect(picked.targets == .classes([1, 0, 1, 0], classes: 2))
        #expect(picked.featureShape == [1])
        let one = try data.subset(classes: 0...0)
        #expect(one.inputs == [0, 3] && one.targets == .classes([0, 0], classes: 1))
    }

    @Test("subset(classes:) errors: values, no classes, out of range, repeated, no sample")
    func errors() throws {
        let data = try Self.sixSamples()
        expectDataError("no classes") { _ = try data.subset(classes: [Int]()) }
        expectDataError("class 3", "0..<3") { _ = try data.subset(classes: [3]) }
        expectDataError("class -1") { _ = try data.subset(classes: [-1]) }
        expectDataError("class 1 is given twice") { _ = try data.subset(classes: [1, 2, 1]) }
        let regression = try ArrayDataset(inputs: [1, 2], featureShape: [1], targets: .values([3, 4], width: 1))
        expectDataError("values, not classes") { _ = try regression.subset(classes: [0]) }
        let gap = try ArrayDataset(inputs: [1, 2], featureShape: [1], targets: .classes([0, 0], classes: 4))
        expectDataError("no sample has class 2, 3") { _ = try gap.subset(classes: [2, 3]) }
    }

    @Test("MNISTDataset.subset(classes:) keeps the chosen classes' names")
    func mnistNames() throws {
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let images = try IDXFile(dimensions: [4, 1, 2], bytes: [0, 1, 10, 11, 20, 21, 30, 31])
        _ = try folder.write(images.encoded(), "t10k-images-idx3-ubyte")
        _ = try folder.write(try IDXFile(dimensions: [4], bytes: [9, 5, 0, 9]).encoded(), "t10k-labels-idx1-ubyte")
        let data = try MNISTDataset(folder: folder.url, split: .test, fashion: true)
        let shoes = try data.subset(classes: [5, 9])
        #expect(shoes.classes == 2 && shoes.classNames == ["Sandal", "Ankle boot"])
        #expect(shoes.labels == [1, 0, 1])
        #expect(shoes.images.map { ($0 * 255).rounded() } == [0, 1, 10, 11, 30, 31])
        #expect(shoes.featureShape == [1, 2])
        expectDataError("MNISTDataset.subset(classes:)", "class 10") { _ = try data.subset(classes: [10]) }
    }
}
