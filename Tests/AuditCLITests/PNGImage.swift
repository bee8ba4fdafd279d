import Foundation

/// An 8-bit RGB or RGBA PNG (as a browser's screenshot is), decoded to RGB pixels, so
/// that a test can count what was drawn. zlib's `uncompress` is found at run time
/// (libz.so.1 is on every machine that has chromium).
struct PNGImage {
    let width: Int
    let height: Int
    /// Red, green, blue of each pixel, row by row.
    let rgb: [UInt8]

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard bytes.count > 8, Array(bytes[0..<8]) == [137, 80, 78, 71, 13, 10, 26, 10] else { throw Invalid(description: "\(path) is not a PNG") }
        func be32(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        var offset = 8, width = 0, height = 0, channels = 0
        var compressed: [UInt8] = []
        while offset + 8 <= bytes.count {
            let length = be32(offset), type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            let body = offset + 8
            if type == "IHDR" {
                (width, height) = (be32(body), be32(body + 4))
                guard bytes[body + 8] == 8, bytes[body + 12] == 0 else { throw Invalid(description: "\(path): only 8-bit, non-interlaced PNGs") }
                switch bytes[body + 9] {
                case 2: channels = 3
                case 6: channels = 4
                default: throw Invalid(description: "\(path): colour type \(bytes[body + 9]) is not RGB or RGBA")
                }
            } else if type == "IDAT" {
                compressed += bytes[body..<body + length]
            } else if type == "IEND" {
                break
            }
            offset = body + length + 4
        }
        let stride = width * channels
        let raw = try Self.inflate(compressed, size: height * (stride + 1))
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        var previous = [UInt8](repeating: 0, count: stride), line = previous
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            for i in 0..<stride {
                let x = raw[y * (stride + 1) + 1 + i]
                let a = i >= channels ? Int(line[i - channels]) : 0, b = Int(previous[i]), c = i >= channels ? Int(previous[i - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
                default: throw Invalid(description: "\(path): filter \(filter) on row \(y)")
                }
                line[i] = x &+ UInt8(truncatingIfNeeded: predictor)
            }
            for px in 0..<width {
                for k in 0..<3 { rgb[(y * width + px) * 3 + k] = line[px * channels + k] }
            }
            swap(&previous, &line)
        }
        (self.width, self.height, self.rgb) = (width, height, rgb)
    }

    private typealias Uncompress = @convention(c) (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt>?, UnsafePointer<UInt8>?, UInt) -> Int32

    private static func inflate(_ data: [UInt8], size: Int) throws -> [UInt8] {
        guard let zlib = dlopen("libz.so.1", RTLD_NOW), let symbol = dlsym(zlib, "uncompress") else {
            throw Invalid(description: "libz.so.1 not found")
        }
        let uncompress = unsafeBitCast(symbol, to: Uncompress.self)
        var out = [UInt8](repeating: 0, count: size)
        var length = UInt(size)
        let status = out.withUnsafeMutableBufferPointer { o in data.withUnsafeBufferPointer { uncompress(o.baseAddress, &length, $0.baseAddress, UInt($0.count)) } }
        guard status == 0, length == UInt(size) else { throw Invalid(description: "zlib status \(status), \(length) of \(size) bytes") }
        return out
    }

    /// The separate shapes (8-connected, at least `minimum` pixels) drawn within
    /// `tolerance` of `colour` ("#rrggbb" in each channel).
    func shapes(of colour: String, tolerance: Int = 40, minimum: Int = 12) -> Int {
        let hex = Array(colour.dropFirst())
        let target = stride(from: 0, to: 6, by: 2).map { Int(String(hex[$0..<$0 + 2]), radix: 16)! }
        var inside = [Bool](repeating: false, count: width * height)
        for p in 0..<width * height {
            inside[p] = (0..<3).allSatisfy { abs(Int(rgb[p * 3 + $0]) - target[$0]) <= tolerance }
        }
        var count = 0
        var stack: [Int] = []
        for start in inside.indices where inside[start] {
            inside[start] = false
            stack.append(start)
            var size = 0
            while let p = stack.popLast() {
                size += 1
                let (x, y) = (p % width, p / width)
                for dy in -1...1 {
                    for dx in -1...1 where (dx, dy) != (0, 0) {
                        let (nx, ny) = (x + dx, y + dy)
                        guard nx >= 0, ny >= 0, nx < width, ny < height, inside[ny * width + nx] else { continue }
                        inside[ny * width + nx] = false
                        stack.append(ny * width + nx)
                    }
                }
            }
            if size >= minimum { count += 1 }
        }
        return count
    }
}
