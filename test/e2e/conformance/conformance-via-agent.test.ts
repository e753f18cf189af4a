/**
 * The adapter conformance suite (test/conformance/suite.ts) with every connection reached through an agent
 * (`via: agent/conformance`, a GatehouseAgent in this process): the same invariants as adapters.test.ts, through
 * the same real clients, so guardrails, masking and recording are shown to behave exactly as direct. PostgreSQL
 * and SSH open their target stream at session start, HTTP and Kubernetes per pooled target socket (TLS to the
 * stand-in API server made over the tunnel stream).
 */
import { httpDriver } from "../../conformance/drivers/http.js";
import { kubernetesDriver } from "../../conformance/drivers/kubernetes.js";
import { postgresDriver } from "../../conformance/drivers/postgres.js";
import { sshDriver } from "../../conformance/drivers/ssh.js";
import { describeConformance } from "../../conformance/suite.js";

describeConformance([postgresDriver, sshDriver, httpDriver, kubernetesDriver], { viaAgent: true });
