import Foundation
import PostgresNIO

extension PostgresClient.Configuration {
    /// A configuration from a `postgres://user[:password]@host[:port]/database` URL, such as the
    /// `REFINER_SEGMENT_POSTGRES_URL` that `Scripts/with-postgres.sh` exports; TLS off (a loopback server).
    ///
    /// For this package's tests and drill; hosts build their configuration as postgres-nio documents it.
    /// - Throws: ``PostgresStoreError`` naming what is missing (never the password).
    package init(refinerSegmentURL text: String) throws {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
            let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty
        else {
            throw PostgresStoreError(
                .invalidInput,
                "expected postgres://user[:password]@host[:port]/database in REFINER_SEGMENT_POSTGRES_URL"
            )
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        self.init(
            host: host,
            port: url.port ?? 5432,
            username: user,
            password: url.password,
            database: database.isEmpty ? nil : database,
            tls: .disable
        )
    }
}
