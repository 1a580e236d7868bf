//! The sandbox's compiler child process for the nodes the integration
//! tests start, as `peergrid node` runs its own hidden `__compile-module`
//! subcommand: see [`peergrid_sandbox::compiler`].

fn main() -> std::process::ExitCode {
    peergrid_sandbox::compiler::child_main()
}
