from pinc.cli import main

main()
