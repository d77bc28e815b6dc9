import Foundation
import TensorCore
import TestSupport
import XCTest

/// Views, copies and joins: values by hand (on `arange`, where each value is its own
/// flat index) and gradients against float differences. These ops only move values, so
/// the differences are exact up to rounding and the default tolerances are loose.
final class ViewTests: XCTestCase {
    let x = Tensor.arange(0, 24).reshaped([2, 3, 4])

    func testReshapeAndFlatten() {
        XCTAssertEqual(x.reshaped([4, -1]).shape, [4, 6])
        XCTAssertEqual(x.reshaped([4, -1]).scalars, x.scalars)
        XCTAssertEqual(x.flattened(from: 1).shape, [2, 12])
        XCTAssertEqual(x.flattened().shape, [24])
        XCTAssertThrowsError(try Tensor.resolveReshape([2, 3], [4, -1])) { error in
            XCTAssertTrue("\(error)".contains("[2, 3]"), "\(error)")
        }
        // Reshaping a transposed (non-contiguous) view copies in logical order.
        let t = x.transposed()  // [2, 4, 3]
        XCTAssertEqual(t.reshaped([2, 12]).scalars.prefix(6), [0, 4, 8, 1, 5, 9])
    }

    func testPermuteTransposeSqueeze() {
        let p = x.permute([2, 0, 1])  // [4, 2, 3]
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(p[1, 1, 2], x[1, 2, 1])
        XCTAssertEqual(x.transposed(0, 2)[3, 1, 0], x[0, 1, 3])
        XCTAssertEqual(x.unsqueezed(1).shape, [2, 1, 3, 4])
        XCTAssertEqual(x.unsqueezed(-1).shape, [2, 3, 4, 1])
        XCTAssertEqual(x.unsqueezed(1).squeezed(1).shape, [2, 3, 4])
    }

    func testSliceExpandAndIndexSelect() {
        let s = x.slice(2, 1..<4, step: 2)  // columns 1, 3
        XCTAssertEqual(s.shape, [2, 3, 2])
        XCTAssertEqual(s.scalars.prefix(4), [1, 3, 5, 7])
        let e = Tensor(shape: [3, 1], [1, 2, 3]).expanded(to: [2, 3, 2])
        XCTAssertEqual(e.scalars, [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(x.indexSelect([1, 0, 1]).shape, [3, 3, 4])
        XCTAssertEqual(x.indexSelect([1, 0, 1]).scalars[0], 12)
    }

    /// `torch.roll` and `torch.flip` on one axis: wrap-around both ways, any axis.
    func testRolledAndFlipped() {
        let r = Tensor(shape: [2, 3], [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(r.rolled(by: 1, axis: 1).scalars, [2, 0, 1, 5, 3, 4])
        XCTAssertEqual(r.rolled(by: -1, axis: 1).scalars, [1, 2, 0, 4, 5, 3])
        XCTAssertEqual(r.rolled(by: 4, axis: 1).scalars, r.rolled(by: 1, axis: 1).scalars)
        XCTAssertEqual(r.rolled(by: 1, axis: 0).scalars, [3, 4, 5, 0, 1, 2])
        XCTAssertEqual(r.rolled(by: 3, axis: -1).scalars, r.scalars)
        XCTAssertEqual(r.flipped(axis: 1).scalars, [2, 1, 0, 5, 4, 3])
        XCTAssertEqual(r.flipped(axis: 0).scalars, [3, 4, 5, 0, 1, 2])
        XCTAssertEqual(x.flipped(axis: 2).flipped(axis: 2).scalars, x.scalars)
        XCTAssertEqual(x.flipped(axis: 1).shape, x.shape)
    }

    func testConcatStackSplitChunk() {
        let a = Tensor(shape: [2, 2], [1, 2, 3, 4]), b = Tensor(shape: [2, 1], [5, 6])
        XCTAssertEqual(Tensor.concat([a, b], axis: 1).scalars, [1, 2, 5, 3, 4, 6])
        XCTAssertEqual(Tensor.stack([a, a * 2], axis: 1).shape, [2, 2, 2])
        XCTAssertEqual(Tensor.stack([a, a * 2], axis: 1).scalars, [1, 2, 2, 4, 3, 4, 6, 8])
        let parts = x.split([1, 2], axis: 1)
        XCTAssertEqual(parts.map(\.shape), [[2, 1, 4], [2, 2, 4]])
        XCTAssertEqual(parts[1].scalars.prefix(4), [4, 5, 6, 7])
        XCTAssertEqual(x.chunk(3, axis: 2).map(\.shape), [[2, 3, 2], [2, 3, 2]])
        XCTAssertEqual(Tensor.arange(0, 5).chunk(2).map(\.scalars), [[0, 1, 2], [3, 4]])
        // Zero-size pieces join and split like others.
        XCTAssertEqual(Tensor.concat([a, Tensor.zeros([0, 2])], axis: 0).shape, [2, 2])
    }

    /// Every view's backward puts the gradient back where the value came from.
    func testViewGradients() {
        let input = randomTensor([2, 3, 4], seed: 140)
        let ops: [(String, (Tensor) -> Tensor)] = [
            ("reshape", { $0.reshaped([4, 6]) }),
            ("permute", { $0.permute([2, 0, 1]) }),
            ("transpose+reshape", { $0.transposed().reshaped([-1]) }),
            ("slice step", { $0.slice(2, 0..<4, step: 3) }),
            ("expand", { $0.slice(0, 0..<1).expanded(to: [5, 3, 4]) }),
            ("indexSelect repeated", { $0.indexSelect([1, 1, 0]) }),
            ("concat", { Tensor.concat([$0, $0.slice(1, 1..<3)], axis: 1) }),
            ("stack", { Tensor.stack([$0, $0 * 2], axis: 0) }),
            ("split", { $0.split([3, 1], axis: 2)[0] }),
            ("chunk", { $0.chunk(2, axis: 2)[1] }),
            ("rolled", { $0.rolled(by: -2, axis: 2).rolled(by: 1, axis: 1) }),
            ("flipped", { $0.flipped(axis: 1) }),
            ("contiguous", { $0.transposed(0, 1).contiguous() }),
            ("unsqueeze+squeeze", { $0.unsqueezed(0).squeezed(0).flattened(from: 1) }),
        ]
        for (name, op) in ops {
            // A failure's line is this one; the shape printed with it tells the ops apart.
            let w = randomTensor(op(input).shape, seed: 141)
            XCTAssertEqual(op(input).count, w.count, name)
            checkGradients([input]) { xs in (op(xs[0]) * w).sum() }
        }
    }

    /// Views share storage; `contiguous()` of a contiguous tensor is the same storage.
    func testViewsDoNotCopy() {
        XCTAssertTrue(x.transposed().storage === x.storage)
        XCTAssertTrue(x.slice(1, 0..<2).storage === x.storage)
        XCTAssertTrue(x.reshaped([6, 4]).storage === x.storage)
        XCTAssertTrue(x.contiguous().storage === x.storage)
        XCTAssertFalse(x.transposed().contiguous().storage === x.storage)
    }
}
