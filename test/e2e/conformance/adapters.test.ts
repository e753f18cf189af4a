/**
 * Every built adapter against the core's invariants (test/conformance/suite.ts), through its protocol's real
 * clients: psql's driver for PostgreSQL, OpenSSH for SSH, curl (and node:https for a kept-alive session) for HTTP,
 * kubectl for Kubernetes.
 */
import { httpDriver } from "../../conformance/drivers/http.js";
import { kubernetesDriver } from "../../conformance/drivers/kubernetes.js";
import { postgresDriver } from "../../conformance/drivers/postgres.js";
import { sshDriver } from "../../conformance/drivers/ssh.js";
import { describeConformance } from "../../conformance/suite.js";

describeConformance([postgresDriver, sshDriver, httpDriver, kubernetesDriver]);
