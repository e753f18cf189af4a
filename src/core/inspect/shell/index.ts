/** Shell command lines -> policy facts (tree-sitter-bash), for any protocol that carries commands. */
export { analyzeShell, loadShellAnalyzer, SHELL_LIMITS, ShellAnalyzer, type ShellAnalysis } from "./analyzer.js";
