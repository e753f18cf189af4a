import { asFields, asString, type Fields } from "./node.js";

/**
 * Parse node type -> policy statement kind (src/core/policy/vocabulary.ts). The mapping is by node type, never by
 * text, so spelling, case, comments and quoting cannot change what a statement is.
 */

/** Node types that end in "Stmt" but are parts of statements, not statements of their own. */
const NOT_STATEMENTS: ReadonlySet<string> = new Set(["RawStmt", "ReturnStmt", "PLAssignStmt", "SetOperationStmt"]);

export function isStatementNode(type: string): boolean {
  return type.endsWith("Stmt") && !NOT_STATEMENTS.has(type);
}

const FIXED: Readonly<Record<string, string>> = {
  InsertStmt: "insert",
  UpdateStmt: "update",
  DeleteStmt: "delete",
  MergeStmt: "merge",
  CopyStmt: "copy",
  DropStmt: "drop",
  DropdbStmt: "drop",
  DropRoleStmt: "drop",
  DropTableSpaceStmt: "drop",
  DropUserMappingStmt: "drop",
  DropSubscriptionStmt: "drop",
  DropOwnedStmt: "drop",
  TruncateStmt: "truncate",
  AlterRoleStmt: "alter_role",
  AlterRoleSetStmt: "alter_role",
  ReassignOwnedStmt: "alter",
  CreateStmt: "create_table",
  CreateForeignTableStmt: "create_table",
  IndexStmt: "create_index",
  CreateRoleStmt: "create_role",
  CreateFunctionStmt: "create_function",
  ViewStmt: "create",
  DefineStmt: "create",
  CompositeTypeStmt: "create",
  RuleStmt: "create",
  ImportForeignSchemaStmt: "create",
  SecLabelStmt: "security_label",
  DoStmt: "do",
  CallStmt: "call",
  ConstraintsSetStmt: "set",
  VariableShowStmt: "show",
  PrepareStmt: "prepare",
  ExecuteStmt: "execute",
  DeallocateStmt: "deallocate",
  DeclareCursorStmt: "declare",
  FetchStmt: "fetch",
  ClosePortalStmt: "close",
  ExplainStmt: "explain",
  LockStmt: "lock",
  ListenStmt: "listen",
  UnlistenStmt: "listen",
  NotifyStmt: "notify",
  DiscardStmt: "discard",
  CommentStmt: "comment",
  RefreshMatViewStmt: "refresh",
  ClusterStmt: "cluster",
  ReindexStmt: "reindex",
  LoadStmt: "load",
};

/**
 * Savepoints open a nested transaction (begin), RELEASE and PREPARE TRANSACTION / COMMIT PREPARED make work durable
 * (commit), ROLLBACK TO and ROLLBACK PREPARED undo it (rollback).
 */
const TRANSACTION: Readonly<Record<string, string>> = {
  TRANS_STMT_BEGIN: "begin",
  TRANS_STMT_START: "begin",
  TRANS_STMT_SAVEPOINT: "begin",
  TRANS_STMT_COMMIT: "commit",
  TRANS_STMT_RELEASE: "commit",
  TRANS_STMT_PREPARE: "commit",
  TRANS_STMT_COMMIT_PREPARED: "commit",
  TRANS_STMT_ROLLBACK: "rollback",
  TRANS_STMT_ROLLBACK_TO: "rollback",
  TRANS_STMT_ROLLBACK_PREPARED: "rollback",
};

/** Object types whose ALTER/RENAME/SET SCHEMA is `alter_table` rather than the generic `alter`. */
const TABLE_OBJECTS: ReadonlySet<string> = new Set(["OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"]);

export function statementKind(type: string, f: Fields): string {
  const fixed = FIXED[type];
  if (fixed !== undefined) return fixed;
  switch (type) {
    case "SelectStmt":
      // SELECT ... INTO creates a table; FOR UPDATE only locks rows and stays a select
      return asFields(f.intoClause) ? "create_table" : "select";
    case "CreateTableAsStmt":
      return f.objtype === "OBJECT_MATVIEW" ? "create" : "create_table";
    case "AlterTableStmt":
      // ALTER INDEX / VIEW / SEQUENCE ... share this node; only real tables are alter_table
      return TABLE_OBJECTS.has(asString(f.objtype) ?? "") ? "alter_table" : "alter";
    case "RenameStmt": {
      const what = asString(f.renameType) ?? "";
      if (what === "OBJECT_ROLE") return "alter_role";
      if (TABLE_OBJECTS.has(what)) return "alter_table";
      const isPartOfTable = what === "OBJECT_COLUMN" || what === "OBJECT_TABCONSTRAINT";
      return isPartOfTable && TABLE_OBJECTS.has(asString(f.relationType) ?? "") ? "alter_table" : "alter";
    }
    case "AlterObjectSchemaStmt":
      return TABLE_OBJECTS.has(asString(f.objectType) ?? "") ? "alter_table" : "alter";
    case "GrantStmt":
    case "GrantRoleStmt":
      return f.is_grant === true ? "grant" : "revoke";
    case "VariableSetStmt":
      return f.kind === "VAR_RESET" || f.kind === "VAR_RESET_ALL" ? "reset" : "set";
    case "TransactionStmt":
      return TRANSACTION[asString(f.kind) ?? ""] ?? "unknown";
    case "VacuumStmt":
      return f.is_vacuumcmd === true ? "vacuum" : "analyze";
  }
  if (type.startsWith("Alter")) return "alter";
  if (type.startsWith("Create")) return "create";
  return "unknown";
}
