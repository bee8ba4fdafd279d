import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an Ed25519 key for signing export manifests; prints the public key for auditors.",
            discussion: """
                Writes FILE (the private key, base64, mode 0600; never overwritten) and FILE.pub (the \
                public key). Keep FILE outside the database's reach; give the public key to auditors.

                Example:
                  audit keygen keys/export.key
                """)

        @Argument(help: ArgumentHelp("The private key file to create.", valueName: "file")) var file: String

        func run() throws {
            let key = try SigningKey.generate(file: file)
            var out = Output()
            try out.line(key.publicKeyBase64)
            try out.flush()
            warn("audit: wrote the private key to \(file) (mode 0600) and the public key to \(file).pub")
        }
    }
}
