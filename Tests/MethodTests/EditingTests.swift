import Formats
import Foundation
import Method
import Models
import TensorCore
import TestSupport
import XCTest

/// A generator that records how it is called: image = the code's mean, in every pixel.
final class CountingGenerator: ImageGenerator {
    let codeLayers: Int
    let codeWidth: Int
    let imageSize = 4
    var summary: String { "counting \(codeLayers) × \(codeWidth)" }
    var batches: [Int] = []

    init(layers: Int, width: Int) {
        codeLayers = layers
        codeWidth = width
    }

    func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor {
        generator.normal([count, codeLayers, codeWidth])
    }

    func render(_ codes: Tensor, noise: NoiseMode) -> Tensor {
        let n = codes.shape[0]
        batches.append(n)
        let means = codes.mean(axes: [1, 2], keepDims: false).scalars
        return Tensor(shape: [n, 3, 4, 4], means.flatMap { Array(repeating: $0, count: 48) })
    }
}

final class EditingTests: XCTestCase {
    // MARK: Names, labels, presets

    func testAttributeNamesResolveAliasesAndListKnownNamesOnError() throws {
        let names = try AttributeNames.resolve(given: nil, recorded: nil, count: 4)
        XCTAssertTrue(names.isOfficial)
        XCTAssertEqual(try names.index(of: "GENDER"), 0)
        XCTAssertEqual(try names.index(of: "male"), 0)
        XCTAssertEqual(try names.index(of: "Eyeglasses"), 1)
        XCTAssertEqual(try names.index(of: "smile"), 3)
        XCTAssertEqual(try names.index(of: "2"), 2)
        XCTAssertThrowsError(try names.index(of: "beard")) { error in
            let text = "\(error)"
            for n in ["beard", "Gender", "Glasses", "Age", "Expression"] {
                XCTAssertTrue(text.contains(n), text)
            }
        }
        let custom = try AttributeNames.resolve(
            given: ["cat", "dog"], recorded: ["a", "b"], count: 2)
        XCTAssertEqual(custom.names, ["cat", "dog"])
        XCTAssertThrowsError(try custom.index(of: "male"), "aliases only for official names")
        XCTAssertThrowsError(try AttributeNames.resolve(given: ["a"], recorded: nil, count: 2))
        XCTAssertEqual(
            try AttributeNames.resolve(given: nil, recorded: ["x", "y"], count: 2).names,
            ["x", "y"])
        let sets = try names.assignments(["age=1", "smile = 0"])
        XCTAssertEqual(sets.map(\.index), [2, 3])
        XCTAssertEqual(sets.map(\.value), [1, 0])
        XCTAssertThrowsError(try names.assignments(["age"]))
        XCTAssertThrowsError(try names.assignments(["age=yes"]))
    }

    func testLabelFilePicksRowsAndColumnsAndReportsMissingRows() throws {
        let text = """
            3
            5_o_Clock_Shadow Eyeglasses Male Smiling Young Expression Age
            a.jpg -1 1 1 -1 1 1 -1
            b.jpg  1 -1 -1 1 -1 -1 1
            c.jpg  1 1 -1 1 1 0 1
            """
        let file = try AttributeLabelFile(text: text, file: "list.txt")
        XCTAssertEqual(file.rows.count, 3)
        let names = AttributeNames(AttributeNames.official)
        // Gender ← Male (alias), Glasses ← Eyeglasses, Age, Expression by name.
        let labels = try file.labels(rows: [2, 0], attributes: names, file: "list.txt")
        XCTAssertEqual(labels.shape, [2, 4])
        XCTAssertEqual(labels.scalars, [0, 1, 1, 0, 1, 1, 0, 1])
        XCTAssertThrowsError(try file.labels(rows: [3], attributes: names, file: "list.txt")) {
            XCTAssertTrue("\($0)".contains("3 label rows"), "\($0)")
            XCTAssertTrue("\($0)".contains("input 3"), "\($0)")
        }
        XCTAssertThrowsError(try AttributeLabelFile(text: "2\nA B\nx 1 1\n", file: "f")) {
            XCTAssertTrue("\($0)".contains("says 2 rows"), "\($0)")
        }
        XCTAssertThrowsError(try AttributeLabelFile(text: "1\nA B\nx 1 2\n", file: "f")) {
            XCTAssertTrue("\($0)".contains("line 3"), "\($0)")
        }
        // Unmatched names with as many columns as attributes: by position.
        let positional = try AttributeLabelFile(text: "1\nP Q\nx 1 -1\n", file: "f")
        XCTAssertEqual(
            try positional.labels(rows: [0], attributes: AttributeNames(["cat", "dog"]), file: "f")
                .scalars, [1, 0])
        XCTAssertThrowsError(
            try file.labels(rows: [0], attributes: AttributeNames(["Beard"]), file: "f"))
        // One value per attribute; an index names its range.
        let two = AttributeNames(["gender", "age"])
        XCTAssertThrowsError(try two.assignments(["gender=0", "Gender=1"])) {
            XCTAssertTrue("\($0)".contains("sets gender again"), "\($0)")
        }
        XCTAssertThrowsError(try two.index(of: "5")) {
            XCTAssertTrue("\($0)".contains("index 5 is out of range 0-1"), "\($0)")
        }
        // Some names match: no positional guess, which would read the age column as gender.
        let partly = try AttributeLabelFile(text: "1\nage foo\nx 1 -1\n", file: "f")
        XCTAssertThrowsError(
            try partly.labels(rows: [0], attributes: AttributeNames(["gender", "age"]), file: "f")
        ) { XCTAssertTrue("\($0)".contains("no column for gender"), "\($0)") }
    }

    func testKeepLayersPresetsAndRanges() throws {
        let names = AttributeNames(AttributeNames.official)
        XCTAssertEqual(try KeepLayers.parse("none"), KeepLayers.none)
        XCTAssertEqual(try KeepLayers.parse("0-3,8-9,12"), .rows(Set([0, 1, 2, 3, 8, 9, 12])))
        for bad in ["3-1", "a", "1-", "-2", ""] {
            XCTAssertThrowsError(try KeepLayers.parse(bad), bad)
        }
        let official = KeepLayers.official
        // Spec: Gender keeps 8..<18; Glasses keeps 0..<2 and 4..<18.
        XCTAssertEqual(
            official.keptRows(changed: [0], layers: 18, attributes: names), Array(8..<18))
        XCTAssertEqual(
            official.keptRows(changed: [1], layers: 18, attributes: names), [0, 1] + Array(4..<18))
        XCTAssertEqual(
            official.keptRows(changed: [2], layers: 18, attributes: names),
            Array(0..<4) + Array(8..<18))
        XCTAssertEqual(
            official.keptRows(changed: [3], layers: 18, attributes: names),
            Array(0..<4) + Array(6..<18))
        // Several attributes: the union of what they may change stays edited.
        XCTAssertEqual(
            official.keptRows(changed: [1, 3], layers: 18, attributes: names),
            [0, 1] + Array(6..<18))
        XCTAssertEqual(official.keptRows(changed: [], layers: 18, attributes: names), Array(0..<18))
        XCTAssertNoThrow(try official.validate(layers: 18, attributes: names))
        XCTAssertThrowsError(try official.validate(layers: 14, attributes: names)) {
            XCTAssertTrue("\($0)".contains("14"), "\($0)")
        }
        XCTAssertThrowsError(
            try official.validate(layers: 18, attributes: AttributeNames(["a", "b"])))
        XCTAssertThrowsError(try KeepLayers.rows([14]).validate(layers: 14, attributes: names))
        XCTAssertNoThrow(try KeepLayers.rows([13]).validate(layers: 14, attributes: names))
    }

    // MARK: Editing and batching

    func smallISF(layers: Int, width: Int, type: ISFLatentType = .wp) -> ISFNetwork {
        let config = ISFConfig(
            layers: layers, randomWidth: 8, attributes: 3, codeWidth: width, innerWidth: 16,
            latentType: type)
        return ISFNetwork(config, seed: 11)
    }

    /// One input with four styles: one ISF batch, and four edited codes plus the source
    /// through the generator in batches of `--batch` (4): two generator calls, five images.
    func testStylesAreBatchedThroughTheGenerator() throws {
        let g = CountingGenerator(layers: 5, width: 12)
        let editor = try Editor(generator: g, isf: smallISF(layers: 5, width: 12))
        var rng = RandomGenerator(seed: 1)
        let sources = rng.normal([1, 5, 12])
        let z = rng.normal([1, 4, 8])
        let targets = Tensor(shape: [1, 3], [1, 0, 1])
        let result = try editor.edit(
            sources: sources, targets: targets, z: z, keptRows: [[0, 4]], batch: 4,
            noise: .constant)
        XCTAssertEqual(g.batches, [4, 1])
        XCTAssertEqual(result.codes.shape, [1, 4, 5, 12])
        XCTAssertEqual(result.images.shape, [1, 5, 3, 4, 4])
        // The first column is the source image, the others match their codes.
        XCTAssertEqual(result.images.scalars[0], sources.mean().item, accuracy: 1e-6)
        // Kept rows 0 and 4 equal the source, the others were edited.
        let src = sources.scalars, out = result.codes.scalars
        for s in 0..<4 {
            for row in 0..<5 {
                let got = Array(out[((s * 5) + row) * 12..<((s * 5) + row + 1) * 12])
                let want = Array(src[row * 12..<(row + 1) * 12])
                XCTAssertEqual(got == want, [0, 4].contains(row), "style \(s) row \(row)")
            }
        }
        // Each style equals a one-style ISF call with its own z: batching changes nothing.
        let single = try editor.editCodes(
            source: sources.reshaped([5, 12]), z: z.slice(1, 2..<3).reshaped([1, 8]),
            target: Tensor(shape: [3], [1, 0, 1]))
        let batched = try editor.editCodes(
            source: sources.reshaped([5, 12]), z: z.reshaped([4, 8]),
            target: Tensor(shape: [3], [1, 0, 1]))
        assertClose(batched.slice(0, 2..<3), single, atol: 1e-6, rtol: 0)
    }

    func testMismatchedISFAndGeneratorAndShapesAreRefused() throws {
        let g = CountingGenerator(layers: 5, width: 12)
        XCTAssertThrowsError(try Editor(generator: g, isf: smallISF(layers: 4, width: 12))) {
            XCTAssertTrue("\($0)".contains("5 × 12"), "\($0)")
        }
        XCTAssertThrowsError(try Editor(generator: g, isf: smallISF(layers: 5, width: 10)))
        let editor = try Editor(generator: g, isf: smallISF(layers: 5, width: 12))
        XCTAssertThrowsError(
            try editor.edit(
                sources: Tensor.zeros([2, 5, 12]), targets: Tensor.zeros([2, 3]),
                z: Tensor.zeros([2, 4, 7]), keptRows: [[], []], batch: 4, noise: .constant))
        XCTAssertThrowsError(
            try editor.edit(
                sources: Tensor.zeros([2, 5, 12]), targets: Tensor.zeros([2, 2]),
                z: Tensor.zeros([2, 4, 8]), keptRows: [[], []], batch: 4, noise: .constant))
    }

    /// A single-code ISF on a W+ generator edits w and repeats it over the rows; a code
    /// whose rows differ is refused. On a one-row generator (a DCGAN's z) it edits the code.
    func testSingleCodeISF() throws {
        let wIsf = smallISF(layers: 1, width: 12, type: .w)
        let editor = try Editor(generator: CountingGenerator(layers: 5, width: 12), isf: wIsf)
        var rng = RandomGenerator(seed: 2)
        let w = rng.normal([1, 12])
        let z = rng.normal([2, 8])
        let d = Tensor(shape: [3], [0, 1, 0])
        let edited = try editor.editCodes(
            source: w.expanded(to: [5, 12]).contiguous(), z: z, target: d)
        let direct = try wIsf(
            codes: w.expanded(to: [2, 12]).contiguous(), z: z,
            targets: d.unsqueezed(0).expanded(to: [2, 3]).contiguous())
        for row in 0..<5 {
            assertClose(
                edited.slice(1, row..<(row + 1)).reshaped([2, 12]), direct, atol: 0, rtol: 0)
        }
        XCTAssertThrowsError(try editor.editCodes(source: rng.normal([5, 12]), z: z, target: d))

        let one = try Editor(generator: CountingGenerator(layers: 1, width: 12), isf: wIsf)
        XCTAssertEqual(try one.editCodes(source: w, z: z, target: d).shape, [2, 1, 12])
    }

    func testInterpolationRunsFromPositiveToNegativeEdit() throws {
        let editor = try Editor(
            generator: CountingGenerator(layers: 5, width: 12), isf: smallISF(layers: 5, width: 12))
        var rng = RandomGenerator(seed: 3)
        let source = rng.normal([5, 12])
        let z = rng.normal([8])
        let labels = Tensor(shape: [3], [0, 1, 1])
        let frames = try editor.interpolation(
            source: source, labels: labels, attribute: 0, z: z, steps: 20)
        XCTAssertEqual(frames.shape, [20, 5, 12])
        let ends = try editor.editCodes(
            source: source, z: z.reshaped([1, 8]).expanded(to: [2, 8]).contiguous(),
            target: Tensor(shape: [2, 3], [1, 1, 1, 0, 1, 1]))
        assertClose(frames.slice(0, 0..<1), ends.slice(0, 0..<1), atol: 1e-6, rtol: 0)
        // α = 0.5 at frame 10.
        let mid = (ends.slice(0, 0..<1) + ends.slice(0, 1..<2)) * 0.5
        assertClose(frames.slice(0, 10..<11), mid, atol: 1e-5, rtol: 0)
    }

    func testLatentFileShapes() throws {
        let g = CountingGenerator(layers: 5, width: 12)
        XCTAssertEqual(
            try LatentFile.codes(Tensor.zeros([3, 5, 12]), space: nil, generator: g, file: "f")
                .shape, [3, 5, 12])
        XCTAssertEqual(
            try LatentFile.codes(Tensor.zeros([3, 1, 5, 12]), space: nil, generator: g, file: "f")
                .shape, [3, 5, 12])
        XCTAssertEqual(
            try LatentFile.codes(Tensor.zeros([5, 12]), space: nil, generator: g, file: "f").shape,
            [1, 5, 12])
        let w = Tensor.arange(0, 24).reshaped([2, 12])
        let b = try LatentFile.codes(w, space: "w", generator: g, file: "f")
        XCTAssertEqual(b.shape, [2, 5, 12])
        XCTAssertEqual(b.slice(1, 3..<4).contiguous().scalars, w.scalars)
        XCTAssertThrowsError(
            try LatentFile.codes(Tensor.zeros([2, 12]), space: nil, generator: g, file: "f")
        ) {
            XCTAssertTrue("\($0)".contains("--space"), "\($0)")
        }
        XCTAssertThrowsError(
            try LatentFile.codes(
                Tensor.zeros([2, 18, 12]), space: nil, generator: g, file: "f.npy")
        ) {
            XCTAssertTrue(
                "\($0)".contains("[2, 18, 12]") && "\($0)".contains("(N, 5, 12)"), "\($0)")
        }
        // A single-code generator takes (N, D) as its codes.
        let one = CountingGenerator(layers: 1, width: 100)
        XCTAssertEqual(
            try LatentFile.codes(Tensor.zeros([3, 100]), space: "z", generator: one, file: "f")
                .shape, [3, 1, 100])
        XCTAssertEqual(
            try LatentFile.randomVectors(
                Tensor.zeros([4, 8]), inputs: 3, styles: nil, width: 8, file: "z"
            ).shape,
            [3, 4, 8])
        XCTAssertThrowsError(
            try LatentFile.randomVectors(
                Tensor.zeros([2, 4, 8]), inputs: 3, styles: nil, width: 8, file: "z"))
    }
}
