import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** The demo's own PostgreSQL: PGlite (real PostgreSQL compiled to WASM) behind its wire-protocol server. */
export interface DemoTarget {
  host: string;
  port: number;
  stop(): Promise<void>;
}

// Seed rows carry the kinds of values masking exists for: emails, card numbers that pass Luhn, secrets.
const SEED = `
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, password text, note text);
INSERT INTO users VALUES
  (1, 'Ada Lovelace',  'ada@example.com',   'scrypt$c2VjcmV0', 'card on file 4111 1111 1111 1111'),
  (2, 'Alan Turing',   'alan@example.com',  'scrypt$ZW5pZ21h', 'prefers invoices'),
  (3, 'Grace Hopper',  'grace@example.com', 'scrypt$Y29ib2w=', 'contact: grace.h@navy.example');
CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users(id), total numeric(10,2), placed_at date);
INSERT INTO orders VALUES (10, 1, 42.00, '2026-11-01'), (11, 2, 17.50, '2026-11-02'), (12, 1, 99.99, '2026-11-03');
CREATE VIEW customer_contacts AS SELECT u.name, u.email, count(o.id) AS orders
  FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.name, u.email;
`;

/** Starts an in-memory demo database on loopback (port 0 = any free port) with a few seeded tables. */
export async function startDemoTarget(port = 0): Promise<DemoTarget> {
  const db = await PGlite.create();
  await db.exec(SEED);
  // the multiplexer lets the gateway hold several sessions (and its catalog lookups) at once
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port, maxConnections: 32 });
  await server.start();
  const bound = server.getServerConn();
  const actualPort = Number(bound.slice(bound.lastIndexOf(":") + 1));
  return {
    host: "127.0.0.1",
    port: actualPort,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
