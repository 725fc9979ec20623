fn main() -> std::process::ExitCode {
    keeper::cli::main()
}
