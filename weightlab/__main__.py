from weightlab.cli import main

main()
