//! `peergrid-compile`: the compiler child process of the sandbox. Reads one
//! compile request on stdin and writes the compiled artifact to stdout under
//! the requested time and memory limits; see
//! [`peergrid_sandbox::compiler`]. Not meant to be run by hand: name it in
//! `Config::compiler` (the sandbox's integration tests do).

fn main() -> std::process::ExitCode {
    peergrid_sandbox::compiler::child_main()
}
