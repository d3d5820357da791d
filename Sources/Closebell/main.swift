print("closebell")
