from producer.host.console import make_console_safe

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()
    make_console_safe()
    from producer.cli import main

    main(prog_name="python -m producer")
