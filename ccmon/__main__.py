from ccmon.cli import main

main()
