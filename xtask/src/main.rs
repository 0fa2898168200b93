fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(xtask::run(std::env::args()))
}
