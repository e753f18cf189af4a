/**
 * Every built adapter against the core's invariants (test/conformance/suite.ts), through its protocol's real
 * clients: psql's driver for PostgreSQL, OpenSSH for SSH.
 */
import { postgresDriver } from "../../conformance/drivers/postgres.js";
import { sshDriver } from "../../conformance/drivers/ssh.js";
import { describeConformance } from "../../conformance/suite.js";

describeConformance([postgresDriver, sshDriver]);
