from faceflow.cli.main import main

main()
