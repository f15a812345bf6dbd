package kgmigrate.neo4j;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Neo4j Community, embedded, serving Bolt on one loopback port: kgmigrate's stand-in for a
 * packaged server where Docker is not available.
 *
 * <p>Embedded defaults differ from a packaged server (auth off, no memory limits), so this
 * sets what production has: auth on, with the password of user {@code neo4j} taken from the
 * environment (never from the command line, which other users can read), and a bounded page
 * cache and transaction memory. The heap is bounded by the JVM's -Xmx. SIGTERM shuts the
 * databases down cleanly (a shutdown hook), so the store is never left to recovery.
 *
 * <p>Usage: {@code Server HOME PORT PAGECACHE_BYTES TX_MEMORY_BYTES}, password in
 * {@code KGMIGRATE_NEO4J_PASSWORD}. Prints one line, {@code ready bolt://127.0.0.1:PORT},
 * once Bolt accepts connections; kgmigrate still checks readiness with the driver.
 */
public final class Server {
    private static final String HOST = "127.0.0.1";
    private static final String PASSWORD_ENV = "KGMIGRATE_NEO4J_PASSWORD";

    private Server() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 4) {
            System.err.println("usage: Server HOME PORT PAGECACHE_BYTES TX_MEMORY_BYTES");
            System.exit(2);
        }
        String password = System.getenv(PASSWORD_ENV);
        if (password == null || password.length() < 8) {
            // Neo4j itself refuses passwords shorter than 8 characters.
            System.err.println(PASSWORD_ENV + " must be set to at least 8 characters");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        DatabaseManagementService service = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(HOST, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(HOST, port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, Long.parseLong(args[2]))
                .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size,
                        Long.parseLong(args[3]))
                .setConfig(GraphDatabaseSettings.transaction_timeout, Duration.ofMinutes(30))
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(service::shutdown, "kgm-shutdown"));
        // Embedded calls run without a login, so they may set the password over the system
        // database; Bolt clients then must present it.
        service.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                Map.of("password", password));
        System.out.println("ready bolt://" + HOST + ":" + port);
        System.out.flush();
        new CountDownLatch(1).await();  // until SIGTERM runs the shutdown hook
    }
}
