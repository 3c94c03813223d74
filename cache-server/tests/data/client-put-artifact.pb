
Gsha256:18b903fe5cc600eb0b42dab883e132f118eddf3882c2baa7562c35a45929a80aamd64¥úÍ¬*linux