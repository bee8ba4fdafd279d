// swift-tools-version:6.1
// A program that embeds AuditEngine, built against this repository by its path.
// From your own package, depend on a clone or a git URL instead (docs/library.md).
import PackageDescription

let package = Package(
    name: "embed",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "audit", path: "../../.."),
    ],
    targets: [
        .executableTarget(name: "embed", dependencies: [.product(name: "AuditEngine", package: "audit")]),
    ]
)
