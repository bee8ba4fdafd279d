// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "audit",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AuditEngine", targets: ["AuditEngine"]),
        .executable(name: "audit", targets: ["audit"]),
        .executable(name: "audit-bench", targets: ["AuditBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        .target(name: "CLuaSandbox", dependencies: ["CLua"]),
        .target(name: "CSQLiteSupport", dependencies: [.product(name: "GRDBSQLite", package: "GRDB.swift")]),
        .target(
            name: "AuditEngine",
            dependencies: [
                "CLuaSandbox",
                "CSQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .target(
            name: "AuditCLI",
            dependencies: [
                "AuditEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "audit", dependencies: ["AuditCLI"]),
        .executableTarget(
            name: "AuditBench",
            dependencies: [
                "AuditEngine",
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "AuditEngineTests",
            dependencies: ["AuditEngine", "CLua", "CLuaSandbox", "CSQLiteSupport", .product(name: "GRDB", package: "GRDB.swift")],
            exclude: ["Hostile", "Lua"]  // read from the source tree (HostileCase, MatcherEquivalenceTests)
        ),
        .testTarget(
            name: "AuditCLITests",
            dependencies: ["AuditCLI", "AuditEngine", .product(name: "Crypto", package: "swift-crypto")]
        ),
    ]
)
